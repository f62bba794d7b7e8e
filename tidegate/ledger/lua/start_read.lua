-- start_read.lua: start the entries that the blocking read sent just before
-- this call, on the same connection, delivered to the consumer.
--
-- A worker that blocks on XREADGROUP would otherwise start each entry it gets
-- with a call of its own: a second round trip per job, and at low load (one
-- entry per read, the sync path) a large part of its cost. Redis runs a
-- connection's commands in order and this one only once the read before it
-- has returned, so sent right behind the read it finds the entries the read
-- delivered: this consumer's pending entries after ``after`` (the newest
-- entry it had read before), delivered once. An entry delivered more than
-- once was reclaimed (XAUTOCLAIM counts a delivery), and the worker starts
-- those itself; entries it read before are at or before ``after``.
-- When the read timed out or failed, there is nothing to start.
-- KEYS: requests, events, dead, deadlines, callbacks
-- ARGV: group, consumer, count, ttl_ms, max_attempts, done_channel, job_prefix, after_id
-- Returns, per entry started: {entry_id, go, attempt_or_state}, as take.lua.
local requests, events, dead = KEYS[1], KEYS[2], KEYS[3]
deadlines_key, callbacks_key = KEYS[4], KEYS[5]
local group, consumer, count, ttl_ms, max_attempts, channel, prefix, after =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6], ARGV[7], ARGV[8]

local out = {}
for _, pending in ipairs(redis.call('XPENDING', requests, group, '(' .. after, '+', count,
                                    consumer)) do
  local id = pending[1]
  if pending[4] == 1 then
    local verdict = {-1, 'unreadable'}
    local entry = redis.call('XRANGE', requests, id, id)[1]
    if entry then
      verdict = start_entry(requests, events, dead, prefix, id, entry[2], group, consumer,
                            ttl_ms, max_attempts, channel)
    end
    out[#out + 1] = {id, verdict[1], verdict[2]}
  end
end
return out

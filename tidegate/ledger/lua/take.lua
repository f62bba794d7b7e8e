-- take.lua: read new entries for a consumer and start each, in one call.
--
-- What a worker does when entries are waiting: XREADGROUP and a start per
-- entry would be two round trips; here they are one. Never blocks (Redis
-- runs XREADGROUP in a script without waiting), so a worker calls it only
-- when its last read suggests more entries wait, and blocks with a plain
-- XREADGROUP otherwise.
-- The projection key of each job is the partition's prefix plus the entry's
-- job id: the hash tag is in the prefix, so it is in this call's slot.
-- KEYS: requests, events, dead, deadlines, callbacks
-- ARGV: group, consumer, count, ttl_ms, max_attempts, done_channel, job_prefix
-- Returns, per entry: {entry_id, fields, go, attempt_or_state}; go = 1: run
-- the attempt; 0: no work (acknowledged; the job's state); -1: not an
-- envelope, left pending for the worker to dead-letter.
local requests, events, dead = KEYS[1], KEYS[2], KEYS[3]
deadlines_key, callbacks_key = KEYS[4], KEYS[5]
local group, consumer, count, ttl_ms, max_attempts, channel, prefix =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6], ARGV[7]

local read = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', count,
                        'STREAMS', requests, '>')
if not read then return {} end
local out = {}
for _, entry in ipairs(read[1][2]) do
  local id, fields = entry[1], entry[2]
  local verdict = start_entry(requests, events, dead, prefix, id, fields, group, consumer,
                              ttl_ms, max_attempts, channel)
  out[#out + 1] = {id, fields, verdict[1], verdict[2]}
end
return out

-- start.lua: a worker begins an attempt.
-- The attempt number comes from the projection (attempts so far + 1), not
-- from the entry: an entry reclaimed from a crashed worker is the same entry
-- delivered again, and it must count as another attempt. A job whose attempts
-- have run out is dead-lettered here instead of run once more.
-- KEYS: requests, events, job, dead, deadlines
-- ARGV: job_id, entry_id, group, consumer, ttl_ms, max_attempts, done_channel,
--       meta, body (the envelope, copied into a dead letter)
-- Returns {1, attempt} to go ahead, or {0, state}: the job needs no work (it
-- ended, was cancelled, is gone or was just dead-lettered); the entry is
-- acknowledged.
local requests, events, proj, dead = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
deadlines_key = KEYS[5]
local job, entry, group, consumer, ttl_ms, max_attempts, channel, meta, body =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6]), ARGV[7], ARGV[8], ARGV[9]

local attempt = (tonumber(redis.call('HGET', proj, 'attempts')) or 0) + 1
if attempt > max_attempts and allowed(current_state(proj), 'dead_lettered') then
  local last = redis.call('HGET', proj, 'last_error') or 'worker lost'
  local why = 'attempts exhausted (' .. max_attempts .. '); last: ' .. last
  local deadline = redis.call('HGET', proj, 'deadline_ms') or '0'
  dead_letter(events, proj, dead, job, entry, why, ttl_ms, deadline, meta, body)
  redis.call('XACK', requests, group, entry)
  redis.call('SPUBLISH', channel, job)
  return {0, 'dead_lettered'}
end
local ev_id, state = append(events, proj, job, 'started', ttl_ms,
                            {'attempt', tostring(attempt), 'consumer', consumer})
if not ev_id then
  redis.call('XACK', requests, group, entry)
  return {0, state}
end
return {1, attempt}

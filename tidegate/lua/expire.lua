-- expire.lua: end a job that is past its deadline without an end.
-- Safe to run in many reconcilers at once: the append is refused for a job
-- that has ended, so a job expires once.
-- KEYS: events stream, job projection, deadline index
-- ARGV: job id, ttl_ms, done channel
-- Returns {1, 'expired'}, or {0, state} when the job had ended or is gone (it
-- is then dropped from the deadline index).
local events, proj = KEYS[1], KEYS[2]
deadlines_key = KEYS[3]
local job, ttl_ms, channel = ARGV[1], ARGV[2], ARGV[3]
local ev_id, state = append(events, proj, job, 'expired', ttl_ms,
                            {'error', 'deadline passed without an outcome'})
if not ev_id then
  redis.call('ZREM', deadlines_key, job)
  return {0, state}
end
redis.call('PUBLISH', channel, job)
return {1, 'expired'}

-- start.lua: a worker begins an attempt.
-- KEYS: requests stream, events stream, job projection
-- ARGV: job id, entry id, group, attempt, consumer, ttl_ms
-- Returns {1, event id} to go ahead, or {0, state}: the job is finished,
-- cancelled or gone, and the entry has been acknowledged (nothing to do).
local requests, events, proj = KEYS[1], KEYS[2], KEYS[3]
local job, entry, group, attempt, consumer, ttl_ms =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local ev_id, state = append(events, proj, job, 'started', ttl_ms,
                            {'attempt', attempt, 'consumer', consumer})
if not ev_id then
  redis.call('XACK', requests, group, entry)
  return {0, state}
end
return {1, ev_id}

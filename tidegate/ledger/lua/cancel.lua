-- cancel.lua: cancel a job that no worker has started.
-- KEYS: events, job, deadlines, callbacks
-- ARGV: job_id, ttl_ms, done_channel
-- Returns {1, 'cancelled'} or {0, state} ('' when there is no such job).
local events, proj = KEYS[1], KEYS[2]
deadlines_key, callbacks_key = KEYS[3], KEYS[4]
local job, ttl_ms, channel = ARGV[1], ARGV[2], ARGV[3]
local ev_id, state = append(events, proj, job, 'cancelled', ttl_ms, {})
if not ev_id then return {0, state} end
redis.call('SPUBLISH', channel, job)
return {1, 'cancelled'}

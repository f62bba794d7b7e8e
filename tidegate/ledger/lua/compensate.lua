-- compensate.lua: record that a dead-lettered job was compensated, and
-- acknowledge its dead letter, in one call.
-- KEYS: events, job, dead, deadlines, callbacks
-- ARGV: job_id, ttl_ms, status (of the compensation call), dead_entry_id, group
-- Returns {1, 'compensated'}, or {0, state} when the job was not waiting for
-- compensation (already compensated, or gone): the dead letter is
-- acknowledged either way, so compensation happens once.
local events, proj, dead = KEYS[1], KEYS[2], KEYS[3]
deadlines_key, callbacks_key = KEYS[4], KEYS[5]
local job, ttl_ms, status, entry, group = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local ev_id, state = append(events, proj, job, 'compensated', ttl_ms, {'status', status})
redis.call('XACK', dead, group, entry)
if not ev_id then return {0, state} end
return {1, 'compensated'}

-- end_callback.lua: a completion callback was delivered, or is given up:
-- it leaves the due set and the job's log records how it ended.
-- Only the first to end it records anything: a delivery whose lease ran out
-- and that was delivered again ends once in the log (the receiver may still
-- have seen both, and drops the repeat by its webhook-id).
-- KEYS: events, job, callbacks, callback_tries
-- ARGV: job_id, ttl_ms, member, event (callback_delivered|callback_failed),
--       for_state, attempts, detail_name (status|error), detail
-- Returns {1, state}, {0, ''} when it had ended already, or {0, state} when
-- the job's state refused the event (its projection expired).
local events, proj, callbacks, tries = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local job, ttl_ms, member, etype, for_state, attempts, detail_name, detail =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
redis.call('HDEL', tries, member)
if redis.call('ZREM', callbacks, member) == 0 then return {0, ''} end
local ev_id, state = append(events, proj, job, etype, ttl_ms,
                            {'for', for_state, 'attempts', attempts, detail_name, detail})
if not ev_id then return {0, state} end
return {1, state}

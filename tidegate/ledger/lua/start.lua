-- start.lua: a worker begins an attempt of an entry it has read
-- (``start_attempt`` in attempt.lua says how).
-- KEYS: requests, events, job, dead, deadlines, callbacks
-- ARGV: job_id, entry_id, group, consumer, ttl_ms, max_attempts, done_channel,
--       meta, body (the envelope, copied into a dead letter)
-- Returns {1, attempt} to go ahead, or {0, state}: the entry needs no work
-- and is acknowledged.
deadlines_key, callbacks_key = KEYS[5], KEYS[6]
return start_attempt(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2], ARGV[3], ARGV[4],
                     ARGV[5], tonumber(ARGV[6]), ARGV[7], ARGV[8], ARGV[9])

-- finish.lua: a worker ends an attempt. Result, events, retry scheduling and
-- XACK in one atomic call: the entry is acknowledged only together with its
-- outcome.
-- KEYS: requests, events, job, result, dead, delayed, deadlines, callbacks
-- ARGV: job_id, entry_id, group, ttl_ms, event (succeeded|failed),
--       retryable (0|1), status ('' = none), error, store_result (0|1),
--       result_headers, result_body, done_channel, retry_due_ms (unix ms),
--       meta, body (the envelope, for the delayed set or the dead letter;
--       empty with a success, which uses neither),
--       upstream_ms (how long the attempt's work took; '' = unknown),
--       inline_bytes (a stored result whose body is at most this long rides
--       along with the done notification; 0 = never)
-- A retryable failure is parked in the delayed-retry set until it is due; a
-- final one is dead-lettered. Returns {1, state}, or {0, state} when the
-- job's state refused the outcome (it had already ended).
local requests, events, proj, result, dead, delayed =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
deadlines_key, callbacks_key = KEYS[7], KEYS[8]
local job, entry, group, ttl_ms, etype, retryable, status, err, store, headers, body, channel,
      due, meta, request_body, upstream_ms, inline_bytes =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9],
  ARGV[10], ARGV[11], ARGV[12], ARGV[13], ARGV[14], ARGV[15], ARGV[16], tonumber(ARGV[17])

local extra = {}
if status ~= '' then extra[#extra + 1] = 'status'; extra[#extra + 1] = status end
if upstream_ms ~= '' then extra[#extra + 1] = 'upstream_ms'; extra[#extra + 1] = upstream_ms end
if etype == 'failed' then
  extra[#extra + 1] = 'error'; extra[#extra + 1] = err
  extra[#extra + 1] = 'retryable'; extra[#extra + 1] = retryable
end
local snap = snapshot(proj)
local ev_id, before, state = append(events, proj, job, etype, ttl_ms, extra, snap)
redis.call('XACK', requests, group, entry)
if not ev_id then return {0, before} end

if store == '1' then
  redis.call('HSET', result, 'status', status, 'headers', headers, 'body', body)
  redis.call('PEXPIRE', result, ttl_ms)
end
local deadline = snap.deadline or '0'
if state == 'queued' then
  redis.call('ZADD', delayed, due, delayed_member(job, deadline, meta, request_body))
  return {1, state}
end
if state == 'failed' then
  ev_id = dead_letter(events, proj, dead, job, entry, err, ttl_ms, deadline, meta, request_body)
          or ev_id
  state = 'dead_lettered'
end
-- The done notification: the job id, or, when the stored result is small, the
-- whole outcome, so that a waiting sync request needs no read to answer:
-- "job \n state \n ended_ms \n status \n headers \n body" (the id, the state,
-- the status and the headers' JSON hold no newline; the body comes last).
if store == '1' and #body <= inline_bytes then
  local ended_ms = string.match(ev_id, '^(%d+)')  -- the time of the event that ended it
  redis.call('SPUBLISH', channel,
             job .. '\n' .. state .. '\n' .. ended_ms .. '\n' .. status .. '\n' .. headers
             .. '\n' .. body)
else
  redis.call('SPUBLISH', channel, job)
end
return {1, state}

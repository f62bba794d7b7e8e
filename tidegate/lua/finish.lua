-- finish.lua: a worker ends an attempt. Result, event, re-enqueue and XACK in
-- one atomic call: the entry is acknowledged only together with its outcome.
-- KEYS: requests stream, events stream, job projection, result hash
-- ARGV: job id, entry id, group, ttl_ms, event type (succeeded|failed),
--       retryable (0|1), status ('' = none), error, store result (0|1),
--       result headers, result body, done channel,
--       then, for a retry, the envelope field pairs to re-enqueue
-- Returns {1, state} or {0, state} when the state refused the event.
local requests, events, proj, result = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local job, entry, group, ttl_ms, etype, retryable, status, err, store, headers, body, channel =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9],
  ARGV[10], ARGV[11], ARGV[12]

local extra = {}
if status ~= '' then extra[#extra + 1] = 'status'; extra[#extra + 1] = status end
if etype == 'failed' then
  extra[#extra + 1] = 'error'; extra[#extra + 1] = err
  extra[#extra + 1] = 'retryable'; extra[#extra + 1] = retryable
end
local ev_id, before = append(events, proj, job, etype, ttl_ms, extra)
redis.call('XACK', requests, group, entry)
if not ev_id then return {0, before} end

local state = redis.call('HGET', proj, 'state')
if store == '1' then
  redis.call('HSET', result, 'status', status, 'headers', headers, 'body', body)
  redis.call('PEXPIRE', result, ttl_ms)
end
if state == 'queued' and #ARGV > 12 then
  local fields = {}
  for i = 13, #ARGV do fields[#fields + 1] = ARGV[i] end
  redis.call('XADD', requests, '*', unpack(fields))
end
if state ~= 'queued' then redis.call('PUBLISH', channel, job) end
return {1, state}

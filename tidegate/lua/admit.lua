-- admit.lua: admit a batch of requests into one route.
-- One call for many jobs: the gateway coalesces concurrent admissions, and a
-- single script call costs one command to encode and parse instead of one per
-- job. All keys belong to one route (one Cluster slot).
--
-- KEYS: requests stream, events stream, deadline index, then per job its
--       projection and, when the job has an Idempotency-Key, the idempotency
--       record
-- ARGV: ttl_ms, deadline_s, then per job 7 values:
--       job id, has idempotency key (0|1), payload digest, method, path,
--       meta (JSON: method, path, query, headers, attempt), body
-- Returns a flat array: per job 'new'|'duplicate'|'conflict' and the job id
-- (for a duplicate or conflict, the id of the job the key belongs to).
local requests, events = KEYS[1], KEYS[2]
deadlines_key = KEYS[3]
local ttl_ms, deadline_s = ARGV[1], tonumber(ARGV[2])

local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local deadline = tostring(now_ms + math.floor(deadline_s * 1000))

local out = {}
local k = 4
for a = 3, #ARGV, 7 do
  local job, has_idem, digest = ARGV[a], ARGV[a + 1], ARGV[a + 2]
  local method, path, meta, body = ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6]
  local proj = KEYS[k]
  local idem = nil
  k = k + 1
  if has_idem == '1' then idem = KEYS[k]; k = k + 1 end

  local outcome, id = 'new', job
  if idem then
    local prev = redis.call('HMGET', idem, 'job', 'digest')
    if prev[1] then
      id = prev[1]
      if prev[2] == digest then outcome = 'duplicate' else outcome = 'conflict' end
    end
  end
  if outcome == 'new' then
    local entry = redis.call('XADD', requests, '*', 'job', job, 'meta', meta, 'body', body,
                             'deadline_ms', deadline)
    append(events, proj, job, 'accepted', ttl_ms,
           {'deadline_ms', deadline, 'entry', entry, 'method', method, 'path', path})
    if idem then
      redis.call('HSET', idem, 'job', job, 'digest', digest)
      redis.call('PEXPIRE', idem, ttl_ms)
    end
  end
  out[#out + 1] = outcome
  out[#out + 1] = id
end
return out

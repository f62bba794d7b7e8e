-- admit.lua: admit a batch of requests into one route.
-- One call for many jobs: the gateway coalesces concurrent admissions, and a
-- single script call costs one command to encode and parse instead of one per
-- job. All keys belong to one route (one Cluster slot).
--
-- Before a job is enqueued, in the same atomic call, on Redis server time:
--   - its tenant's quota bucket (when the tenant has a quota; always on);
--   - the route's capacity throttle, when the scaler has set one: one token
--     bucket shared by every gateway; a lower priority class needs a reserve
--     left in the bucket (low: half the burst, normal: a tenth, high: none);
--     with tenants, each active tenant (seen in the last share window) also
--     has a fair-share bucket at rate x weight / sum of active weights, so
--     one tenant's surge cannot take the others' share.
-- Nothing is consumed unless every check passes. A route that is not
-- throttled costs one HMGET here, and no round trip anywhere.
--
-- KEYS: requests, events, deadlines, throttle, refused, tenants_active,
--       tenant_weights
-- KEYS per job: job, idempotency (when it has a key), quota (when its tenant
--       has a quota), share (when it has a tenant)
-- ARGV: ttl_ms, deadline_s, share_window_ms
-- ARGV per job: job_id, has_idempotency_key (0|1), payload_digest, method,
--       path, meta (JSON), body, tenant ('' = none), quota_rate_per_s
--       (0 = none), quota_burst, weight, priority (0 high, 1 normal, 2 low),
--       callback (the URL the client asked to be called at the end; '' = none),
--       trace (the client's checked traceparent, a newline and its tracestate
--       when it has one; '' = none: kept in the projection for the callback)
-- Returns a flat array, 3 per job: outcome ('new'|'duplicate'|'conflict'|
-- 'throttled'|'quota'), job id (for duplicate/conflict: the key's job), and
-- for throttled/quota "retry_ms,remaining,limit,window_s" (else '').
local requests, events = KEYS[1], KEYS[2]
deadlines_key = KEYS[3]
local throttle, refused, active, weights = KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local ttl_ms, deadline_s, window_ms = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])

local now_ms = server_ms()
local deadline = tostring(now_ms + math.floor(deadline_s * 1000))
local RESERVE = {[0] = 0, [1] = 0.1, [2] = 0.5}

local th = redis.call('HMGET', throttle, 'rate', 'burst')
local rate, burst = tonumber(th[1]), tonumber(th[2])
local throttled = rate ~= nil and rate > 0
local route_tokens = nil
local active_weight = nil
if throttled then
  burst = math.max(1, burst or 1)
  route_tokens = bucket_level(throttle, rate, burst, now_ms)
  redis.call('ZREMRANGEBYSCORE', active, '-inf', now_ms - window_ms)
end

local out = {}
local refusals = 0
local k = 8
for a = 4, #ARGV, 14 do
  local job, has_idem, digest = ARGV[a], ARGV[a + 1], ARGV[a + 2]
  local method, path, meta, body = ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6]
  local tenant, quota_rate, quota_burst = ARGV[a + 7], tonumber(ARGV[a + 8]), tonumber(ARGV[a + 9])
  local weight, class, callback = tonumber(ARGV[a + 10]), tonumber(ARGV[a + 11]), ARGV[a + 12]
  local trace = ARGV[a + 13]
  local proj = KEYS[k]
  k = k + 1
  local idem, quota, share = nil, nil, nil
  if has_idem == '1' then idem = KEYS[k]; k = k + 1 end
  if quota_rate > 0 then quota = KEYS[k]; k = k + 1 end
  if tenant ~= '' then share = KEYS[k]; k = k + 1 end

  local outcome, id, extra = 'new', job, ''
  if idem then
    local prev = redis.call('HMGET', idem, 'job', 'digest')
    if prev[1] then
      id = prev[1]
      if prev[2] == digest then outcome = 'duplicate' else outcome = 'conflict' end
    end
  end

  if outcome == 'new' then
    -- The checks: compute every level first, consume only if all pass.
    local quota_tokens, share_tokens, share_rate, share_burst = nil, nil, nil, nil
    if quota then
      quota_tokens = bucket_level(quota, quota_rate, quota_burst, now_ms)
      if quota_tokens < 1 then
        outcome = 'quota'
        extra = bucket_info((1 - quota_tokens) / quota_rate * 1000, quota_tokens, quota_burst,
                            quota_burst / quota_rate)
      end
    end
    if outcome == 'new' and throttled then
      if share then
        local seen = redis.call('ZSCORE', active, tenant)
        redis.call('ZADD', active, now_ms, tenant)
        redis.call('HSET', weights, tenant, tostring(weight))
        if not active_weight then
          active_weight = 0
          local names = redis.call('ZRANGE', active, 0, -1)
          local ws = redis.call('HMGET', weights, unpack(names))
          for i = 1, #names do active_weight = active_weight + (tonumber(ws[i]) or 1) end
        elseif not seen then
          active_weight = active_weight + weight
        end
        share_rate = rate * weight / math.max(active_weight, weight)
        share_burst = math.max(1, burst * weight / math.max(active_weight, weight))
        share_tokens = bucket_level(share, share_rate, share_burst, now_ms)
      end
      local need = 1 + RESERVE[class] * burst
      if route_tokens < need then
        outcome = 'throttled'
        extra = bucket_info((need - route_tokens) / rate * 1000,
                            math.max(0, route_tokens - need + 1), burst, burst / rate)
      elseif share_tokens and share_tokens < 1 then
        outcome = 'throttled'
        extra = bucket_info((1 - share_tokens) / share_rate * 1000, share_tokens,
                            share_burst, share_burst / share_rate)
      end
    end
    if outcome == 'new' then
      if quota then bucket_keep(quota, quota_tokens - 1, quota_rate, quota_burst, now_ms, true) end
      if throttled then
        route_tokens = route_tokens - 1
        if share then bucket_keep(share, share_tokens - 1, share_rate, share_burst, now_ms, true) end
      end
      local entry = redis.call('XADD', requests, '*', 'job', job, 'meta', meta, 'body', body,
                               'deadline_ms', deadline)
      local accepted = {'deadline_ms', deadline, 'entry', entry, 'method', method, 'path', path}
      if tenant ~= '' then accepted[#accepted + 1] = 'tenant'; accepted[#accepted + 1] = tenant end
      if callback ~= '' then
        accepted[#accepted + 1] = 'callback'; accepted[#accepted + 1] = callback
      end
      if trace ~= '' then accepted[#accepted + 1] = 'trace'; accepted[#accepted + 1] = trace end
      append(events, proj, job, 'accepted', ttl_ms, accepted)
      if idem then
        redis.call('HSET', idem, 'job', job, 'digest', digest)
        redis.call('PEXPIRE', idem, ttl_ms)
      end
    else
      refusals = refusals + 1
    end
  end
  out[#out + 1] = outcome
  out[#out + 1] = id
  out[#out + 1] = extra
end
if throttled then bucket_keep(throttle, route_tokens, rate, burst, now_ms, false) end
if refusals > 0 then redis.call('INCRBY', refused, refusals) end
return out

-- bucket.lua: token buckets on Redis server time, shared by the scripts that
-- admit (admit.lua) or pass (quota.lua) requests. Prepended after fold.lua.
-- A bucket is a hash {tokens, ts_ms}; a missing one is full.

local function server_ms()
  local now = redis.call('TIME')
  return tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
end

-- Tokens in the bucket at now_ms: refilled at rate per second, up to burst.
local function bucket_level(key, rate, burst, now_ms)
  local b = redis.call('HMGET', key, 'tokens', 'ts_ms')
  local tokens = tonumber(b[1]) or burst
  local ts = tonumber(b[2]) or now_ms
  return math.min(burst, tokens + math.max(0, now_ms - ts) * rate / 1000)
end

-- Store the level; with `expire`, the bucket goes once it would be full again.
local function bucket_keep(key, tokens, rate, burst, now_ms, expire)
  redis.call('HSET', key, 'tokens', tostring(tokens), 'ts_ms', now_ms)
  if expire then
    redis.call('PEXPIRE', key, math.ceil(burst / rate * 1000) + 60000)
  end
end

-- What a refusal tells the client: "retry_ms,remaining,limit,window_s".
local function bucket_info(retry_ms, remaining, limit, window_s)
  return math.ceil(retry_ms) .. ',' .. math.floor(remaining) .. ',' .. math.floor(limit) ..
         ',' .. math.ceil(window_s)
end

-- quota.lua: take one token from a tenant's quota bucket, for a request that
-- is not admitted into a queue (a proxy route). Queued routes check quotas
-- inside admit.lua instead, in the same call as the enqueue.
-- KEYS: quota (the tenant's bucket on the route), refused
-- ARGV: rate_per_s, burst
-- Returns {1, ''} when passed, {0, "retry_ms,remaining,limit,window_s"} when not.
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local now_ms = server_ms()
local tokens = bucket_level(KEYS[1], rate, burst, now_ms)
if tokens < 1 then
  redis.call('INCR', KEYS[2])
  return {0, bucket_info((1 - tokens) / rate * 1000, tokens, burst, burst / rate)}
end
bucket_keep(KEYS[1], tokens - 1, rate, burst, now_ms, true)
return {1, ''}

-- quota.lua: take tokens from a tenant's quota bucket, for a request that is
-- not admitted into a queue (a proxy route). Queued routes check quotas
-- inside admit.lua instead, in the same call as the enqueue.
-- KEYS: quota (the tenant's bucket on the route), refused
-- ARGV: rate_per_s, burst, want
-- One token for the request, and up to `want` in all when the bucket keeps at
-- least half its burst after them (a gateway's lease: ledger/quota_leases.py);
-- a bucket below that gives one token per call, as many calls as tokens.
-- Returns {1, '', taken} when passed, {0, "retry_ms,remaining,limit,window_s"} when not.
local rate, burst, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local now_ms = server_ms()
local tokens = bucket_level(KEYS[1], rate, burst, now_ms)
if tokens < 1 then
  redis.call('INCR', KEYS[2])
  return {0, bucket_info((1 - tokens) / rate * 1000, tokens, burst, burst / rate)}
end
local taken = math.max(1, math.min(want, math.floor(tokens - burst / 2)))
bucket_keep(KEYS[1], tokens - taken, rate, burst, now_ms, true)
return {1, '', taken}

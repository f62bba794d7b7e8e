-- workers.lua: the route's live workers and their jobs in flight, as each
-- last reported ("in_flight:unix_ms"); records older than max_age_ms (a
-- worker gone without a goodbye) are removed here.
-- KEYS: workers
-- ARGV: now_ms, max_age_ms
-- Returns {consumer, in_flight, ...} of the fresh records.
local workers = KEYS[1]
local now_ms, max_age_ms = tonumber(ARGV[1]), tonumber(ARGV[2])
local flat = redis.call('HGETALL', workers)
local out, stale = {}, {}
for i = 1, #flat, 2 do
  local count, at = string.match(flat[i + 1], '^(%d+):(%d+)$')
  if count and now_ms - tonumber(at) <= max_age_ms then
    out[#out + 1] = flat[i]
    out[#out + 1] = count
  else
    stale[#stale + 1] = flat[i]
  end
end
if #stale > 0 then redis.call('HDEL', workers, unpack(stale)) end
return out

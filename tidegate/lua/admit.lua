-- admit.lua: admit one request into its route.
-- KEYS: requests stream, events stream, job projection, idempotency key ('' = none)
-- ARGV: job id, ttl_ms, deadline_s, payload digest, then envelope field pairs
-- Returns {'new'|'duplicate'|'conflict', job id}
local requests, events, proj, idem = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local job, ttl_ms, deadline_s, digest = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

if idem ~= '' then
  local prev = redis.call('HMGET', idem, 'job', 'digest')
  if prev[1] then
    if prev[2] == digest then return {'duplicate', prev[1]} end
    return {'conflict', prev[1]}
  end
end

local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local deadline = tostring(now_ms + math.floor(tonumber(deadline_s) * 1000))
local fields = {}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
fields[#fields + 1] = 'deadline_ms'; fields[#fields + 1] = deadline
local entry = redis.call('XADD', requests, '*', unpack(fields))
local f = pairs_to_table(ARGV, 5)
append(events, proj, job, 'accepted', ttl_ms,
       {'deadline_ms', deadline, 'entry', entry, 'method', f['method'], 'path', f['path']})
if idem ~= '' then
  redis.call('HSET', idem, 'job', job, 'digest', digest)
  redis.call('PEXPIRE', idem, ttl_ms)
end
return {'new', job}

-- sample.lua: what the scaler reads of one partition every tick, in one call
-- (before: XLEN, EXISTS, XINFO GROUPS, XRANGE, XINFO STREAM and GET, each a
-- round trip of its own).
-- KEYS: requests, refused
-- ARGV: group
-- Returns {length, exists, found, pending, lag, oldest_ms, added, refused}:
-- exists and found are 1 or 0 (the stream; the group); lag is -1 when Redis
-- does not know it (the caller counts then); oldest_ms is the first entry
-- not yet delivered (unix ms; -1: none waits).
local requests, refused_key = KEYS[1], KEYS[2]
local group = ARGV[1]
local refused = tonumber(redis.call('GET', refused_key)) or 0
if redis.call('EXISTS', requests) == 0 then
  return {0, 0, 0, 0, 0, -1, 0, refused}
end
local length = redis.call('XLEN', requests)
local function field(flat, name)
  for i = 1, #flat, 2 do
    if flat[i] == name then return flat[i + 1] end
  end
  return nil
end
local added = tonumber(field(redis.call('XINFO', 'STREAM', requests), 'entries-added')) or 0
local function first_after(start)
  local page = redis.call('XRANGE', requests, start, '+', 'COUNT', 1)
  if #page == 0 then return -1 end
  return tonumber(string.match(page[1][1], '^(%d+)'))
end
for _, g in ipairs(redis.call('XINFO', 'GROUPS', requests)) do
  if field(g, 'name') == group then
    local pending = tonumber(field(g, 'pending')) or 0
    local lag = field(g, 'lag')
    local last = field(g, 'last-delivered-id')
    if not lag then
      return {length, 1, 1, pending, -1, -1, added, refused}
    end
    lag = tonumber(lag)
    local oldest = -1
    if lag > 0 then oldest = first_after('(' .. last) end
    return {length, 1, 1, pending, lag, oldest, added, refused}
  end
end
local oldest = -1
if length > 0 then oldest = first_after('-') end
return {length, 1, 0, 0, length, oldest, added, refused}

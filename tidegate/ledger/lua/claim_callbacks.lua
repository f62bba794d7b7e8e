-- claim_callbacks.lua: take the completion callbacks that are due, for one
-- delivery attempt each.
-- A claimed callback stays in the set, due again once its lease has passed:
-- should the deliverer die before it records an outcome (a worker killed
-- mid-delivery), another one delivers it then. Delivery is at least once;
-- the receiver drops repeats by their webhook-id.
-- KEYS: callbacks, callback_tries
-- ARGV: now_ms, lease_ms, most
-- Returns {next_due_ms (-1: none left), member, attempt, first_due_ms, ...}:
-- per claimed callback, "job \n state", this attempt's number (1 = first)
-- and when it first fell due.
local callbacks, tries = KEYS[1], KEYS[2]
local now_ms, lease_ms, most = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {-1}
local due = redis.call('ZRANGEBYSCORE', callbacks, '-inf', now_ms, 'WITHSCORES', 'LIMIT', 0, most)
for i = 1, #due, 2 do
  local member, score = due[i], math.floor(tonumber(due[i + 1]))
  local attempt, first = 1, score
  local seen = redis.call('HGET', tries, member)
  if seen then
    local a, f = string.match(seen, '^(%d+):(%d+)$')
    attempt, first = tonumber(a) + 1, tonumber(f)
  end
  redis.call('HSET', tries, member, attempt .. ':' .. first)
  redis.call('ZADD', callbacks, now_ms + lease_ms, member)
  out[#out + 1] = member
  out[#out + 1] = attempt
  out[#out + 1] = first
end
local head = redis.call('ZRANGE', callbacks, 0, 0, 'WITHSCORES')
if #head > 0 then out[1] = math.floor(tonumber(head[2])) end
return out

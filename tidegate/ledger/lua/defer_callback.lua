-- defer_callback.lua: a claimed callback its deliverer has no slot for (its
-- receiver, or its tenant, has as many deliveries under way as it may have):
-- due again at due_ms, and the claim does not count as an attempt.
-- KEYS: callbacks, callback_tries
-- ARGV: member, due_ms, attempt, first_due_ms
-- Returns 1, or 0 when the callback had ended meanwhile (nothing is changed).
local callbacks, tries = KEYS[1], KEYS[2]
local member, due_ms, attempt, first = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
if not redis.call('ZSCORE', callbacks, member) then return 0 end
redis.call('ZADD', callbacks, due_ms, member)
if attempt > 1 then
  redis.call('HSET', tries, member, (attempt - 1) .. ':' .. first)
else
  redis.call('HDEL', tries, member)
end
return 1

-- promote.lua: move retries that are due from the delayed set into the stream.
-- A member is "job id \n deadline_ms \n meta \n body" (the job id and the
-- deadline hold no newline, and meta is JSON, which escapes newlines), so one
-- sorted-set member carries the whole envelope and nothing else is stored.
-- KEYS: requests, delayed
-- ARGV: now_ms (unix ms), most (entries to move at most)
-- Returns {entries moved, due time of the next waiting retry or -1}, so that a
-- worker can block on the stream no longer than until that retry is due.
local requests, delayed = KEYS[1], KEYS[2]
local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
  local a = string.find(member, '\n', 1, true)
  local b = string.find(member, '\n', a + 1, true)
  local c = string.find(member, '\n', b + 1, true)
  redis.call('XADD', requests, '*', 'job', string.sub(member, 1, a - 1),
             'meta', string.sub(member, b + 1, c - 1), 'body', string.sub(member, c + 1),
             'deadline_ms', string.sub(member, a + 1, b - 1))
  redis.call('ZREM', delayed, member)
end
local next_due = redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')
if next_due[2] then return {#due, tonumber(next_due[2])} end
return {#due, -1}

-- overdue.lua: settle a job that is past its deadline without an end.
-- Safe to run in many reconcilers at once: every change is an append that the
-- job's state must allow, so a job expires once and is requeued once per
-- deadline.
--
-- Route policy `expire` (max_requeues 0): the job gets `expired`.
-- Route policy `requeue`: while the job has been requeued fewer than
-- max_requeues times it gets `requeued` with a new deadline instead:
--   - its work is still on the way (entry undelivered, held by a consumer,
--     or a retry waiting in the delayed set): the new deadline is all;
--   - its entry is no longer anywhere (lost in a failover, deleted by hand):
--     a copy of the entry is added to the stream, when the stream still has
--     it, and the job is queued again; without one it expires, since there
--     is nothing left to redo.
-- KEYS: requests, events, job, deadlines, callbacks
-- ARGV: job_id, ttl_ms, done_channel, max_requeues, deadline_s, group
-- Returns {1, 'expired'|'requeued'}, or {0, state} when the job had ended or
-- is gone (it is then dropped from the deadline index).
local requests, events, proj = KEYS[1], KEYS[2], KEYS[3]
deadlines_key, callbacks_key = KEYS[4], KEYS[5]
local job, ttl_ms, channel, group = ARGV[1], ARGV[2], ARGV[3], ARGV[6]
local max_requeues, deadline_s = tonumber(ARGV[4]), tonumber(ARGV[5])

local snap = snapshot(proj)
local state = snap.state
if state == '' or terminal(state) then
  redis.call('ZREM', deadlines_key, job)
  return {0, state}
end

local function expire(why)
  local ev_id, refused = append(events, proj, job, 'expired', ttl_ms, {'error', why}, snap)
  if not ev_id then
    redis.call('ZREM', deadlines_key, job)
    return {0, refused}
  end
  redis.call('SPUBLISH', channel, job)
  return {1, 'expired'}
end

local requeues = tonumber(redis.call('HGET', proj, 'requeues') or '0')
if requeues >= max_requeues then
  if requeues == 0 then return expire('deadline passed without an outcome') end
  return expire('deadline passed ' .. (requeues + 1) .. ' times without an outcome')
end

-- Stream ids compare as (milliseconds, sequence).
local function parse_id(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function after(a, b)
  local am, as = parse_id(a)
  local bm, bs = parse_id(b)
  return am > bm or (am == bm and as > bs)
end

local function on_its_way(entry)
  if redis.call('HGET', proj, 'last_event') == 'failed' then
    return true  -- a retry: in the delayed set, or moved back into the stream
  end
  if not entry or redis.call('EXISTS', requests) == 0 then return false end
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', requests)) do
    local info = pairs_to_table(g, 1)
    if info['name'] == group then
      if after(entry, info['last-delivered-id']) then return true end  -- undelivered
      return #redis.call('XPENDING', requests, group, entry, entry, 1) > 0  -- held
    end
  end
  return true  -- no group yet: every entry is still to be delivered
end

local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local deadline = tostring(now_ms + math.floor(deadline_s * 1000))
local entry = redis.call('HGET', proj, 'entry')
local extra = {'deadline_ms', deadline, 'requeues', tostring(requeues + 1)}
if not on_its_way(entry) then
  local found = {}
  if entry and redis.call('EXISTS', requests) == 1 then
    found = redis.call('XRANGE', requests, entry, entry)
  end
  if #found == 0 then return expire('deadline passed and its request is gone: nothing to redo') end
  local f = pairs_to_table(found[1][2], 1)
  local copy = redis.call('XADD', requests, '*', 'job', job, 'meta', f['meta'],
                          'body', f['body'], 'deadline_ms', deadline)
  extra[#extra + 1] = 'entry'; extra[#extra + 1] = copy
end
append(events, proj, job, 'requeued', ttl_ms, extra, snap)
return {1, 'requeued'}

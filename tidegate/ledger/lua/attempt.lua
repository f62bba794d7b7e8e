-- attempt.lua: the start of an attempt, shared by start.lua (one entry a
-- worker has read), take.lua (the entries it reads and starts in one call)
-- and start_read.lua (the entries a blocking read just delivered).
--
-- The attempt number comes from the projection (attempts so far + 1), not
-- from the entry: an entry reclaimed from a crashed worker is the same entry
-- delivered again, and it must count as another attempt. A job whose attempts
-- have run out is dead-lettered here instead of run once more.
-- Returns {1, attempt} to go ahead, or {0, state}: the job needs no work (it
-- ended, was cancelled, is gone or was just dead-lettered); the entry is
-- acknowledged.
local function start_attempt(requests, events, proj, dead, job, entry, group, consumer,
                             ttl_ms, max_attempts, channel, meta, body)
  local snap = snapshot(proj)
  local attempt = (tonumber(snap.attempts) or 0) + 1
  if attempt > max_attempts and allowed(snap.state, 'dead_lettered') then
    local last = redis.call('HGET', proj, 'last_error') or 'worker lost'
    local why = 'attempts exhausted (' .. max_attempts .. '); last: ' .. last
    local deadline = snap.deadline or '0'
    dead_letter(events, proj, dead, job, entry, why, ttl_ms, deadline, meta, body)
    redis.call('XACK', requests, group, entry)
    redis.call('SPUBLISH', channel, job)
    return {0, 'dead_lettered'}
  end
  local ev_id, state = append(events, proj, job, 'started', ttl_ms,
                              {'attempt', tostring(attempt), 'consumer', consumer}, snap)
  if not ev_id then
    redis.call('XACK', requests, group, entry)
    return {0, state}
  end
  return {1, attempt}
end

-- Start an entry read from the stream (id, its flat field list), as take.lua
-- and start_read.lua do: the job id, meta and body come from the entry, the
-- projection key is the partition's prefix plus the job id. Returns
-- {go, attempt_or_state} as start_attempt does, or {-1, 'unreadable'}: not an
-- envelope, left pending for the worker to dead-letter.
local function start_entry(requests, events, dead, prefix, id, fields, group, consumer,
                           ttl_ms, max_attempts, channel)
  local f = pairs_to_table(fields, 1)
  if not (f['job'] and f['body'] and f['meta'] and pcall(cjson.decode, f['meta'])) then
    return {-1, 'unreadable'}
  end
  return start_attempt(requests, events, prefix .. f['job'], dead, f['job'], id, group,
                       consumer, ttl_ms, max_attempts, channel, f['meta'], f['body'])
end

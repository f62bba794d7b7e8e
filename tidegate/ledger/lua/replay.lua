-- replay.lua: fold one logged event into its projection again.
-- KEYS: job, deadlines
-- ARGV: event_id, ttl_ms, fields... (the event's field pairs)
-- An `accepted` event starts the projection afresh. Returns 1 when applied,
-- 0 when the projection's state refused it (the log is inconsistent).
local proj = KEYS[1]
deadlines_key = KEYS[2]
local ev_id, ttl_ms = ARGV[1], ARGV[2]
local f = pairs_to_table(ARGV, 3)
if f['type'] == 'accepted' then redis.call('DEL', proj) end
local snap = snapshot(proj)
if not allowed(snap.state, f['type']) then return 0 end
fold(proj, snap, ev_id, f, ttl_ms)
return 1

-- publish_view.lua: replace the scaler's view of a route, with its TTL.
-- KEYS: scaler
-- ARGV: ttl_ms, fields... (name, JSON value pairs)
local key = KEYS[1]
redis.call('DEL', key)
redis.call('HSET', key, unpack(ARGV, 2))
redis.call('PEXPIRE', key, ARGV[1])
return 1

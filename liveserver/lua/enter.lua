-- enter.lua: enter a lottery (a set insert: once per user, however often it is called).
--
-- KEYS[1]  lc:{room}:lottery:<lottery>           lottery hash (phase, start_ms, end_ms)
-- KEYS[2]  lc:{room}:lottery:<lottery>:entrants  set of user ids
-- ARGV[1]  user id
--
-- Reply: {1, entrants, added}  entered (added = 1 the first time, 0 after)
--        {0, code}              code = not_found | not_started | ended
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local l = redis.call('HMGET', KEYS[1], 'phase', 'start_ms', 'end_ms')
if not l[1] then
  return {0, 'not_found'}
end
if l[1] ~= 'live' or now >= tonumber(l[3]) then
  return {0, 'ended'}
end
if now < tonumber(l[2]) then
  return {0, 'not_started'}
end
local added = redis.call('SADD', KEYS[2], ARGV[1])
return {1, redis.call('SCARD', KEYS[2]), added}

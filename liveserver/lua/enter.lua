-- enter.lua: enter a lottery (a set insert: once per user, however often it is called),
-- after its entry conditions (a lucky bag's): following the room, minutes watched, and
-- entering by the keyword danmaku only.
--
-- KEYS[1]  lc:{room}:lottery:<lottery>           lottery hash (phase, start_ms, end_ms,
--                                                 need_follow, need_watch_ms, need_keyword)
-- KEYS[2]  lc:{room}:lottery:<lottery>:entrants  set of user ids
-- KEYS[3]  lc:{room}:followers                   set of users following the room (optional)
-- ARGV[1]  user id
-- ARGV[2]  ms the user has watched the room (all sessions, counted by the nodes; optional)
-- ARGV[3]  "1" when the entry comes from a danmaku containing the keyword (optional)
--
-- Reply: {1, entrants, added}  entered (added = 1 the first time, 0 after)
--        {0, code}              code = not_found | not_started | ended
--        {0, "forbidden", why}  why = follow | watch | keyword (a condition is not met)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local l = redis.call('HMGET', KEYS[1], 'phase', 'start_ms', 'end_ms', 'need_follow', 'need_watch_ms', 'need_keyword')
if not l[1] then
  return {0, 'not_found'}
end
if l[1] ~= 'live' or now >= tonumber(l[3]) then
  return {0, 'ended'}
end
if now < tonumber(l[2]) then
  return {0, 'not_started'}
end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 0 then
  if l[6] == '1' and ARGV[3] ~= '1' then
    return {0, 'forbidden', 'keyword'}
  end
  if l[4] == '1' and (not KEYS[3] or redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 0) then
    return {0, 'forbidden', 'follow'}
  end
  if tonumber(l[5] or '0') > tonumber(ARGV[2] or '0') then
    return {0, 'forbidden', 'watch', tonumber(l[5])}
  end
end
local added = redis.call('SADD', KEYS[2], ARGV[1])
return {1, redis.call('SCARD', KEYS[2]), added}

-- admit.lua: may this viewer join the room? Run through the auto-pipelining ScriptRunner,
-- so the admissions of a join storm share round trips instead of one pipeline each.
--
-- KEYS[1]  lc:{room}:meta  room hash (a room exists when it has an epoch)
-- KEYS[2]  lc:{room}:bans  set of banned user ids
-- ARGV[1]  user id, or "" for a guest (guests are not checked against the bans)
--
-- Reply: 0 no such room, 1 admitted, 2 banned
if redis.call('HEXISTS', KEYS[1], 'epoch') == 0 then
  return 0
end
if ARGV[1] ~= '' and redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then
  return 2
end
return 1

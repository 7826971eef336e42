-- watch.lua: a signed-in viewer's connection ended. Its time counts as watched (lucky
-- bags' watch_s, across reconnects and nodes) and the user has been in the room
-- (invites). A script, not a MULTI, so it rides the auto-pipelining ScriptRunner: the
-- leaves of a stream's end share round trips instead of a pipeline each.
--
-- KEYS[1]  lc:{room}:watch  hash user -> ms watched in ended sessions (all nodes)
-- KEYS[2]  lc:{room}:seen   set of users who have been in the room
-- ARGV[1]  user id
-- ARGV[2]  ms of the session that ended (>= 0)
--
-- Reply: the user's ms watched in this room so far
local total = redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
return total

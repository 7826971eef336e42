-- follow.lua: follow or unfollow a room's host (a set insert/remove: once per user).
-- The first follow of a user appends one `follow` event (the "X followed" line in chat);
-- following again or unfollowing appends nothing.
--
-- KEYS[1]  lc:{room}:followers  set of user ids
-- KEYS[2]  lc:{room}:ev         room event stream
-- KEYS[3]  lc:{room}:meta       room hash (see _append_event)
-- ARGV[1]  user id
-- ARGV[2]  display name
-- ARGV[3]  1 = follow, 0 = unfollow
-- ARGV[4]  room stream maxlen
--
-- Reply: {following (1|0), followers}
--! include _append_event
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[3] == '1' then
  if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then
    local n = redis.call('SCARD', KEYS[1])
    append_event(KEYS[2], KEYS[3], 'follow', cjson.encode({user = ARGV[1], name = ARGV[2], followers = n}),
      ARGV[4], now)
  end
  return {1, redis.call('SCARD', KEYS[1])}
end
redis.call('SREM', KEYS[1], ARGV[1])
return {0, redis.call('SCARD', KEYS[1])}

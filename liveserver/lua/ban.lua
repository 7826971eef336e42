-- ban.lua: ban or unban a user in a room, atomically with the `ban` event that tells
-- every node. Nodes keep each open room's bans (hub.py, loaded by room_open.lua) and admit
-- signed-in viewers from that copy: the set and the event must never disagree.
--
-- KEYS[1]  lc:{room}:ev      the room event stream
-- KEYS[2]  lc:{room}:meta    room hash (epoch, last, ...)
-- KEYS[3]  lc:{room}:bans    set of banned user ids
-- ARGV[1]  user id
-- ARGV[2]  "1" ban, "0" unban
-- ARGV[3]  maxlen            approximate stream length kept for resume
--
-- Reply: {offset, ts_ms} of the `ban` event {user, banned} (node-internal: never relayed)
--! include _append_event
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local banned = ARGV[2] == '1'
if banned then
  redis.call('SADD', KEYS[3], ARGV[1])
else
  redis.call('SREM', KEYS[3], ARGV[1])
end
local body = cjson.encode({user = ARGV[1], banned = banned})
local id = append_event(KEYS[1], KEYS[2], 'ban', body, ARGV[3], now)
return {id, now}

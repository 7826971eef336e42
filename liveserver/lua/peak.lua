-- peak.lua: raise a room's peak online count (never lowers it). Every node offers the room
-- total it sees at its tick; the maximum wins whatever the order.
--
-- KEYS[1]  lc:{room}:meta  room hash (`peak_online`, `peak_ms`)
-- ARGV[1]  online count seen
--
-- Reply: the peak after this call
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local peak = tonumber(redis.call('HGET', KEYS[1], 'peak_online') or '0')
local seen = tonumber(ARGV[1])
if seen > peak then
  redis.call('HSET', KEYS[1], 'peak_online', seen, 'peak_ms', now)
  return seen
end
return peak

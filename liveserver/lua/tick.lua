-- tick.lua: one node's per-tick report for one room; returns the room-wide counters.
--
-- KEYS[1]  lc:{room}:likes   room like total (string counter)
-- KEYS[2]  lc:{room}:online  hash node -> viewers on that node
-- KEYS[3]  lc:{room}:nodes   zset node -> last heartbeat ms (Redis TIME)
-- KEYS[4]  lc:{room}:likes-by-node  hash node -> the node's likes total already added to KEYS[1]
--                            (one field per node process that took likes in the room)
-- ARGV[1]  node id
-- ARGV[2]  likes taken on this node for this room, in total since the node started: a
--          total, not a delta, so a report that timed out after Redis ran it, and the
--          next one that repeats it, add the likes once (only what exceeds the field)
-- ARGV[3]  viewers on this node now (0 removes the node from the room)
-- ARGV[4]  node ttl ms: a node silent for longer is dead and its viewers drop out
--
-- Reply: {likes_total, online_total}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local taken = tonumber(ARGV[2])
local added = tonumber(redis.call('HGET', KEYS[4], ARGV[1]) or '0')
local likes
if taken > added then
  likes = redis.call('INCRBY', KEYS[1], taken - added)
  redis.call('HSET', KEYS[4], ARGV[1], taken)
else
  likes = tonumber(redis.call('GET', KEYS[1]) or '0')
end

local count = tonumber(ARGV[3])
if count > 0 then
  redis.call('HSET', KEYS[2], ARGV[1], count)
  redis.call('ZADD', KEYS[3], now, ARGV[1])
else
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
end

local cutoff = now - tonumber(ARGV[4])
local dead = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', cutoff)
for _, node in ipairs(dead) do
  redis.call('HDEL', KEYS[2], node)
end
if #dead > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', cutoff)
end

local online = 0
for _, v in ipairs(redis.call('HVALS', KEYS[2])) do
  online = online + tonumber(v)
end
return {likes, online}

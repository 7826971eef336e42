-- stats_tick.lua: one node's live data for one room (sessions, uniques, likes per minute,
-- the 10 s live series), sent once a second per room (and when a room closes or the node
-- stops): the hub batches the ticks' joins and leaves, each stamped with Redis time (the
-- node's clock corrected by the offset it learns from this script's reply), so every
-- node's records share one clock. The call is also the node's heartbeat: open sessions of
-- a node that dies end at its last one.
--
-- KEYS[1]  lc:{room}:sessions  list of session records: "j|<sid>|<user>|<ms>|<node>" and "l|<sid>|<ms>"
-- KEYS[2]  lc:{room}:beats     hash node -> last heartbeat ms (never pruned: open sessions end there)
-- KEYS[3]  lc:{room}:uv        set of viewer ids that ever joined (exact unique viewers)
-- KEYS[4]  lc:{room}:minute    hash "likes:<minute>" -> likes (minute = ms // 60000), and the
--                              live series at 10 s steps (b = ms // 10000): "lk10:<b>" likes,
--                              "on10:<b>" max online, "dm10:<b>" danmaku total at the end of b
-- KEYS[5]  lc:{room}:meta      room hash (n_danmaku: the danmaku counter of _append_event)
-- ARGV[1]  node id
-- ARGV[2]  likes taken on this node since its last stats tick (>= 0)
-- ARGV[3]  the room's online total as this node last saw it (all nodes)
-- ARGV[4..] records: "j|<sid>|<user>|<ms>" (a join) or "l|<sid>|<ms>" (a leave), in the order
--           they happened (ms: Redis time of the event)
--
-- Reply: {unique viewers, now ms}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local node = ARGV[1]
local out = {}
for i = 4, #ARGV do
  local rec = ARGV[i]
  if string.sub(rec, 1, 2) == 'j|' then
    local user = string.match(rec, '^j|[^|]*|(.*)|%d+$')
    redis.call('SADD', KEYS[3], user)
    out[#out + 1] = rec .. '|' .. node
  else
    out[#out + 1] = rec
  end
  if #out >= 1000 then
    redis.call('RPUSH', KEYS[1], unpack(out))
    out = {}
  end
end
if #out > 0 then
  redis.call('RPUSH', KEYS[1], unpack(out))
end
redis.call('HSET', KEYS[2], node, now)
local likes = tonumber(ARGV[2])
local b = math.floor(now / 10000)
if likes > 0 then
  redis.call('HINCRBY', KEYS[4], 'likes:' .. math.floor(now / 60000), likes)
  redis.call('HINCRBY', KEYS[4], 'lk10:' .. b, likes)
end
local online = tonumber(ARGV[3])
if online > tonumber(redis.call('HGET', KEYS[4], 'on10:' .. b) or '-1') then
  redis.call('HSET', KEYS[4], 'on10:' .. b, online)
end
redis.call('HSET', KEYS[4], 'dm10:' .. b, redis.call('HGET', KEYS[5], 'n_danmaku') or '0')
return {redis.call('SCARD', KEYS[3]), now}

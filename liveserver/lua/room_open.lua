-- room_open.lua: everything a node needs to open a room, in one round trip (read-only).
--
-- KEYS[1]    lc:{room}:meta     room hash (epoch, last, card, ...)
-- KEYS[2]    lc:{room}:ev       room event stream (its first and last ids)
-- KEYS[3]    lc:{room}:likes    like total
-- KEYS[4]    lc:{room}:online   hash node -> viewers
-- KEYS[5]    lc:{room}:nodes    zset node -> last heartbeat ms
-- KEYS[5+i]  the index zset (object id -> created ms) of load spec i, i = 1..ARGV[2]
-- KEYS[5+n+j] single keys of the room read whole, j = 1..m (m = the last ARGV)
-- ARGV[1]    node ttl ms: nodes silent for longer are not counted online
-- ARGV[2]    number of load specs n
-- ARGV[3..]  per spec: object key prefix, count (the newest `count` ids), number of
--            extras m, then m pairs (read, suffix) with read = hgetall | scard; an
--            extra reads the key <prefix><id><suffix>
-- ARGV[last] m, the number of single keys
--
-- Object keys are built here from the prefixes: each prefix carries the room's {hash tag},
-- so every key read is in the slot of KEYS[1] (Redis Cluster accepts that for EVAL).
--
-- Reply: {meta (flat HGETALL), first id | "", last id | "", likes, online, spec_1, ..., spec_n, singles?}
--        spec_i = { {id, fields (flat HGETALL), extra_1, ..., extra_m}, ... } oldest first
--        singles (only when m > 0) = { {type, value}, ... }: {"hash", flat HGETALL},
--        {"string", value}, {"set", SMEMBERS} or {"none", ""}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
local likes = tonumber(redis.call('GET', KEYS[3]) or '0')
local online = 0
local alive = redis.call('ZRANGEBYSCORE', KEYS[5], now - tonumber(ARGV[1]), '+inf')
if #alive > 0 then
  for _, v in ipairs(redis.call('HMGET', KEYS[4], unpack(alive))) do
    online = online + (tonumber(v) or 0)
  end
end

local reply = {redis.call('HGETALL', KEYS[1]), first[1] and first[1][1] or '', last[1] and last[1][1] or '', likes, online}
local a = 3
for i = 1, tonumber(ARGV[2]) do
  local prefix, count, m = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local extras = {}
  for j = 1, m do
    extras[j] = {ARGV[a + 1 + 2 * j], ARGV[a + 2 + 2 * j]}
  end
  a = a + 3 + 2 * m
  local objects = {}
  for _, id in ipairs(redis.call('ZRANGE', KEYS[5 + i], -count, -1)) do
    local row = {id, redis.call('HGETALL', prefix .. id)}
    for j, extra in ipairs(extras) do
      local key = prefix .. id .. extra[2]
      if extra[1] == 'scard' then
        row[2 + j] = redis.call('SCARD', key)
      else
        row[2 + j] = redis.call('HGETALL', key)
      end
    end
    objects[#objects + 1] = row
  end
  reply[#reply + 1] = objects
end

local m = tonumber(ARGV[a])
if m > 0 then
  local n = tonumber(ARGV[2])
  local singles = {}
  for j = 1, m do
    local key = KEYS[5 + n + j]
    local kind = redis.call('TYPE', key).ok
    if kind == 'hash' then
      singles[j] = {'hash', redis.call('HGETALL', key)}
    elseif kind == 'string' then
      singles[j] = {'string', redis.call('GET', key)}
    elseif kind == 'set' then
      singles[j] = {'set', redis.call('SMEMBERS', key)}
    else
      singles[j] = {'none', ''}
    end
  end
  reply[#reply + 1] = singles
end
return reply

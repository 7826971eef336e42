-- claim.lua: claim one coupon of a drop, atomically (window, per-user limit, quantity).
--
-- KEYS[1]  lc:{room}:coupon:<coupon>          coupon hash (left, quantity, per_user, start_ms, end_ms, ...)
-- KEYS[2]  lc:{room}:coupon:<coupon>:users    hash user -> coupons claimed
-- KEYS[3]  lc:{room}:claims:<user>            hash coupon id -> claim JSON (the user's wallet in this room):
--          {coupon_id, room, title, amount, min_spend, claimed_ms, count, used, orders, expires_ms?};
--          a second claim of the same drop (per_user > 1) raises count and keeps used/orders
-- ARGV[1]  user id
-- ARGV[2]  coupon id
--
-- Reply: a JSON string {"ok":true,"coupon":id,"left":n,"claimed":k}
--        or {"ok":false,"code":"not_found"|"not_started"|"ended"|"sold_out"|"already_claimed"}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local user = ARGV[1]

local c = redis.call('HMGET', KEYS[1], 'left', 'per_user', 'start_ms', 'end_ms', 'title', 'amount', 'min_spend', 'room',
  'expires_ms')
if not c[1] then
  return cjson.encode({ok = false, code = 'not_found'})
end
local left, per_user = tonumber(c[1]), tonumber(c[2])
if now < tonumber(c[3]) then
  return cjson.encode({ok = false, code = 'not_started', start_ms = tonumber(c[3])})
end
if now >= tonumber(c[4]) then
  return cjson.encode({ok = false, code = 'ended'})
end
local have = tonumber(redis.call('HGET', KEYS[2], user) or '0')
if have >= per_user then
  return cjson.encode({ok = false, code = 'already_claimed', claimed = have})
end
if left <= 0 then
  return cjson.encode({ok = false, code = 'sold_out', left = 0})
end

left = redis.call('HINCRBY', KEYS[1], 'left', -1)
local claimed = redis.call('HINCRBY', KEYS[2], user, 1)
local entry = {used = 0, orders = {}}
local before = redis.call('HGET', KEYS[3], ARGV[2])
if before then
  entry = cjson.decode(before)
end
entry.coupon_id, entry.room, entry.title = ARGV[2], c[8], c[5]
entry.amount, entry.min_spend, entry.count = tonumber(c[6]), tonumber(c[7]), claimed
entry.claimed_ms = entry.claimed_ms or now
if c[9] then
  entry.expires_ms = tonumber(c[9])
end
redis.call('HSET', KEYS[3], ARGV[2], cjson.encode(entry))
return cjson.encode({ok = true, coupon = ARGV[2], left = left, claimed = claimed})

-- shop_hold.lua: step 1 of spending a shop-wide coupon (usable in every room of a merchant).
-- The coupon lives in the merchant's slot, the order in the room's slot, so no single script
-- can do both: this script HOLDS one use of the coupon for one checkout, with a deadline.
-- Step 2 is buy.lua in the room slot (which fences the hold id to the order it creates);
-- step 3 is shop_settle.lua `commit` (hold -> used by the order) or `release` (hold gone,
-- the use is free again). A hold nobody settles (the node died) is settled by any node's
-- sweeper after its deadline, from what the room says (shop_fence.lua): never spent twice,
-- never lost.
--
-- KEYS[1]  lc:{m:<merchant>}:wallet:<user>  hash coupon id -> entry JSON {coupon_id, merchant,
--          title, amount, min_spend, expires_ms, count, used, orders: {order: room},
--          holds: {hold id: deadline ms}}
-- KEYS[2]  lc:{m:<merchant>}:holds          zset "<user>\31<coupon>\31<hold id>" -> deadline ms
--                                           (\31 = the ASCII unit separator)
-- ARGV[1]  user
-- ARGV[2]  coupon id
-- ARGV[3]  hold id (`<room>|<sale>|<idempotency key>`: a retried buy reuses its hold)
-- ARGV[4]  hold ms
--
-- Reply: JSON {"ok":true,"amount":a,"min_spend":m,"deadline_ms":ms,"again":bool}
--        or {"ok":false,"coupon":"not_in_wallet"|"used"|"expired"}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local raw = redis.call('HGET', KEYS[1], ARGV[2])
if not raw then
  return cjson.encode({ok = false, coupon = 'not_in_wallet'})
end
local e = cjson.decode(raw)
if type(e.holds) ~= 'table' then e.holds = {} end
if type(e.orders) ~= 'table' then e.orders = {} end
if e.holds[ARGV[3]] then
  return cjson.encode({ok = true, amount = e.amount, min_spend = e.min_spend, deadline_ms = e.holds[ARGV[3]],
                       again = true})
end
local held = 0
for _ in pairs(e.holds) do held = held + 1 end
if tonumber(e.used or 0) + held >= tonumber(e.count or 1) then
  return cjson.encode({ok = false, coupon = 'used'})
end
if e.expires_ms and now >= tonumber(e.expires_ms) then
  return cjson.encode({ok = false, coupon = 'expired'})
end
local deadline = now + tonumber(ARGV[4])
e.holds[ARGV[3]] = deadline
redis.call('HSET', KEYS[1], ARGV[2], cjson.encode(e))
redis.call('ZADD', KEYS[2], deadline, ARGV[1] .. '\31' .. ARGV[2] .. '\31' .. ARGV[3])
return cjson.encode({ok = true, amount = e.amount, min_spend = e.min_spend, deadline_ms = deadline, again = false})

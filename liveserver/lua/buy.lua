-- buy.lua: one flash-sale purchase, atomically. Cannot oversell: every check runs
-- before the first write (Redis scripts have no rollback), and stock only moves here
-- and in expire.lua.
--
-- KEYS[1]  lc:{room}:sale:<sale>        sale hash (price, stock, initial, reserved, paid,
--                                        per_user_limit, start_ms, end_ms, product_id, title)
-- KEYS[2]  lc:{room}:sale:<sale>:users  hash user -> units held (reserved + paid)
-- KEYS[3]  lc:{room}:sale:<sale>:keys   hash "<user> <key>" -> first successful reply
-- KEYS[4]  lc:{room}:orderdata          hash order id -> order JSON
-- KEYS[5]  lc:{room}:deadlines          zset order id -> pay-by ms
-- KEYS[6]  lc:{room}:orders             orders stream (merchant backends consume it)
-- KEYS[7]  lc:{room}:seq                hash of id counters
-- KEYS[8]  lc:{room}:ev                 room event stream (sold-out `sale` event)
-- KEYS[9]  lc:{room}:meta               room hash (`last`, `trimmed`, `epoch`: see _append_event)
-- KEYS[10] lc:{room}:claims:<user>      the buyer's wallet in this room (hash coupon id -> claim JSON);
--                                        only read/written when ARGV[8] names a coupon
-- KEYS[11] lc:{room}:shop-holds         hash shop-coupon hold id -> order id | "void" (shop_fence.lua);
--                                        only read/written when ARGV[9] carries a shop-wide coupon
-- ARGV[1]  user id
-- ARGV[2]  qty (>= 1)
-- ARGV[3]  idempotency key
-- ARGV[4]  payment window ms
-- ARGV[5]  room
-- ARGV[6]  sale id
-- ARGV[7]  room stream maxlen
-- ARGV[8]  coupon id from the buyer's wallet, or "" for none
-- ARGV[9]  a held shop-wide coupon, JSON {coupon_id, merchant, hold, amount, min_spend}, or ""
--          (shop_hold.lua held one use for this checkout; this script fences the hold id to
--          the order, so the sweeper can tell a used hold from an abandoned one)
--
-- Reply: a JSON string, either
--   {"ok":true,"order":id,"status":"reserved","qty":n,"amount":cents,"pay_by_ms":ms,"stock":left}
--   {"ok":false,"code":"not_found"|"not_started"|"ended"|"sold_out"|"limit_reached","stock":left?}
--   with a coupon, success also carries "coupon", "discount" (cents off) and "amount" is what is
--   owed: max(0, price*qty - coupon amount). A coupon refusal is
--   {"ok":false,"code":...,"coupon":"not_in_wallet"|"used"|"expired"|"min_spend",...}
--   (codes not_found | already_claimed | ended | limit_reached).
-- Coupon state in the wallet entry: count (claimed), used (spent on live orders), orders
-- (order id -> ms), expires_ms (optional). A coupon is usable while used < count and
-- now < expires_ms; this script does used += 1 with the order, expire.lua undoes it once.
-- A repeated (user, key) gets the first successful reply again, byte for byte.
--! include _append_event
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local user, qty, key = ARGV[1], tonumber(ARGV[2]), ARGV[3]

local idem = user .. ' ' .. key
local first = redis.call('HGET', KEYS[3], idem)
if first then
  return first
end

local s = redis.call('HMGET', KEYS[1], 'stock', 'start_ms', 'end_ms', 'per_user_limit', 'price')
if not s[1] then
  return cjson.encode({ok = false, code = 'not_found'})
end
local stock, start_ms, end_ms = tonumber(s[1]), tonumber(s[2]), tonumber(s[3])
local limit, price = tonumber(s[4]), tonumber(s[5])

if now < start_ms then
  return cjson.encode({ok = false, code = 'not_started', start_ms = start_ms})
end
if now >= end_ms then
  return cjson.encode({ok = false, code = 'ended'})
end
local held = tonumber(redis.call('HGET', KEYS[2], user) or '0')
if held + qty > limit then
  return cjson.encode({ok = false, code = 'limit_reached', held = held, limit = limit})
end
if stock < qty then
  return cjson.encode({ok = false, code = 'sold_out', stock = stock})
end
local total = price * qty
local coupon_id, wallet, discount = ARGV[8] or '', nil, 0  -- ARGV[8..9] are optional
if coupon_id ~= '' then
  local raw = redis.call('HGET', KEYS[10], coupon_id)
  if not raw then
    return cjson.encode({ok = false, code = 'not_found', coupon = 'not_in_wallet'})
  end
  wallet = cjson.decode(raw)
  local used, count = tonumber(wallet.used or 0), tonumber(wallet.count or 1)
  if used >= count then
    return cjson.encode({ok = false, code = 'already_claimed', coupon = 'used'})
  end
  if wallet.expires_ms and now >= tonumber(wallet.expires_ms) then
    return cjson.encode({ok = false, code = 'ended', coupon = 'expired', expires_ms = tonumber(wallet.expires_ms)})
  end
  local min_spend = tonumber(wallet.min_spend or 0)
  if total < min_spend then
    return cjson.encode({ok = false, code = 'limit_reached', coupon = 'min_spend', min_spend = min_spend, total = total})
  end
  discount = math.min(tonumber(wallet.amount), total)
end
local shop = nil
if ARGV[9] and ARGV[9] ~= '' then
  shop = cjson.decode(ARGV[9])
  if redis.call('HEXISTS', KEYS[11], shop.hold) == 1 then
    -- the sweeper voided this hold (its deadline passed), or another order took it
    return cjson.encode({ok = false, code = 'ended', coupon = 'hold_expired'})
  end
  local min_spend = tonumber(shop.min_spend or 0)
  if total < min_spend then
    return cjson.encode({ok = false, code = 'limit_reached', coupon = 'min_spend', min_spend = min_spend, total = total})
  end
  discount = math.min(tonumber(shop.amount), total)
end

-- Every check passed: write.
local left = redis.call('HINCRBY', KEYS[1], 'stock', -qty)
redis.call('HINCRBY', KEYS[1], 'reserved', qty)
redis.call('HINCRBY', KEYS[2], user, qty)
local n = redis.call('HINCRBY', KEYS[7], 'order', 1)
local order_id = ARGV[5] .. '.o' .. n
local pay_by = now + tonumber(ARGV[4])
local amount = total - discount
local fields = {
  id = order_id, room = ARGV[5], sale = ARGV[6], user = user, qty = qty, price = price,
  amount = amount, status = 'reserved', created_ms = now, pay_by_ms = pay_by, key = key,
}
if wallet then
  fields.coupon = coupon_id
  fields.discount = discount
  wallet.used = tonumber(wallet.used or 0) + 1
  if type(wallet.orders) ~= 'table' then
    wallet.orders = {}
  end
  wallet.orders[order_id] = now
  redis.call('HSET', KEYS[10], coupon_id, cjson.encode(wallet))
end
if shop then
  fields.coupon = shop.coupon_id
  fields.discount = discount
  fields.shop = shop.merchant
  fields.hold = shop.hold
  redis.call('HSET', KEYS[11], shop.hold, order_id)
end
local order = cjson.encode(fields)
redis.call('HSET', KEYS[4], order_id, order)
redis.call('ZADD', KEYS[5], pay_by, order_id)
redis.call('XADD', KEYS[6], '*', 'type', 'reserved', 'order', order_id, 'sale', ARGV[6],
  'user', user, 'qty', qty, 'amount', amount, 'ts', now, 'data', order)

local out = {ok = true, order = order_id, status = 'reserved', qty = qty,
  amount = amount, pay_by_ms = pay_by, stock = left}
if wallet or shop then
  out.coupon = wallet and coupon_id or shop.coupon_id
  out.discount = discount
end
local reply = cjson.encode(out)
redis.call('HSET', KEYS[3], idem, reply)

if left == 0 then
  -- The unit that emptied the stock announces it, exactly once per emptying.
  local body = cjson.encode({sale = {id = ARGV[6], phase = 'sold_out', stock = 0}})
  append_event(KEYS[8], KEYS[9], 'sale', body, ARGV[7], now)
end
return reply

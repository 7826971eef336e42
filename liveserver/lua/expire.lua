-- expire.lua: return the units of one unpaid order to stock, exactly once.
-- Any node or worker may call it for the same order at the same time: only the call
-- that finds the order still `reserved` and past its deadline changes anything.
--
-- KEYS[1]  lc:{room}:orderdata          hash order id -> order JSON
-- KEYS[2]  lc:{room}:deadlines          zset order id -> pay-by ms
-- KEYS[3]  lc:{room}:sale:<sale>        sale hash
-- KEYS[4]  lc:{room}:sale:<sale>:users  hash user -> units held
-- KEYS[5]  lc:{room}:orders             orders stream
-- KEYS[6]  lc:{room}:ev                 room event stream (stock is back: `sale` event)
-- KEYS[7]  lc:{room}:meta               room hash (`last`, `trimmed`, `epoch`: see _append_event)
-- KEYS[8]  lc:{room}:claims:<user>      the order's buyer's wallet (optional; read only when the
--                                        order used a coupon: the coupon goes back with the units)
-- KEYS[9]  lc:{room}:shop-returns       zset order id -> ms: expired orders whose shop-wide coupon
--                                        use the sweeper gives back (shop_settle.lua unuse) (optional)
-- ARGV[1]  order id
-- ARGV[2]  room stream maxlen
--
-- Reply: 1 when this call expired the order, 0 when there was nothing to do
--        (already paid, already expired, not yet due, unknown).
--! include _append_event
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 0
end
local order = cjson.decode(raw)
if order.status ~= 'reserved' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 0
end
if tonumber(order.pay_by_ms) > now then
  return 0
end

order.status = 'expired'
order.expired_ms = now
local data = cjson.encode(order)
redis.call('HSET', KEYS[1], ARGV[1], data)
redis.call('ZREM', KEYS[2], ARGV[1])
local before = tonumber(redis.call('HGET', KEYS[3], 'stock') or '0')
local left = redis.call('HINCRBY', KEYS[3], 'stock', order.qty)
redis.call('HINCRBY', KEYS[3], 'reserved', -order.qty)
redis.call('HINCRBY', KEYS[3], 'expired', order.qty)
redis.call('HINCRBY', KEYS[4], order.user, -order.qty)
if order.shop and KEYS[9] then
  redis.call('ZADD', KEYS[9], now, ARGV[1])
elseif order.coupon and KEYS[8] then
  -- Same atomic step as the status flip above, so the coupon comes back exactly once.
  local raw_coupon = redis.call('HGET', KEYS[8], order.coupon)
  if raw_coupon then
    local wallet = cjson.decode(raw_coupon)
    if type(wallet.orders) == 'table' and wallet.orders[ARGV[1]] then
      wallet.orders[ARGV[1]] = nil
      wallet.used = math.max(0, tonumber(wallet.used or 0) - 1)
      redis.call('HSET', KEYS[8], order.coupon, cjson.encode(wallet))
    end
  end
end
redis.call('XADD', KEYS[5], '*', 'type', 'expired', 'order', ARGV[1], 'sale', order.sale,
  'user', order.user, 'qty', order.qty, 'amount', order.amount, 'ts', now, 'data', data)

if before == 0 and now < tonumber(redis.call('HGET', KEYS[3], 'end_ms') or '0') then
  local body = cjson.encode({sale = {id = order.sale, phase = 'live', stock = left}})
  append_event(KEYS[6], KEYS[7], 'sale', body, ARGV[2], now)
end
return 1

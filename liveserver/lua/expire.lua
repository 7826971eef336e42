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
-- KEYS[7]  lc:{room}:meta               room hash (`last`)
-- ARGV[1]  order id
-- ARGV[2]  room stream maxlen
--
-- Reply: 1 when this call expired the order, 0 when there was nothing to do
--        (already paid, already expired, not yet due, unknown).
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
redis.call('XADD', KEYS[5], '*', 'type', 'expired', 'order', ARGV[1], 'sale', order.sale,
  'user', order.user, 'qty', order.qty, 'amount', order.amount, 'ts', now, 'data', data)

if before == 0 and now < tonumber(redis.call('HGET', KEYS[3], 'end_ms') or '0') then
  local body = cjson.encode({sale = {id = order.sale, phase = 'live', stock = left}})
  local id = redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[2], '*', 'k', 'sale', 'ts', now, 'd', body)
  redis.call('HSET', KEYS[7], 'last', id)
end
return 1

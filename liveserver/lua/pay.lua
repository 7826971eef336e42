-- pay.lua: mark a reserved order paid (the merchant's payment callback). Idempotent.
--
-- KEYS[1]  lc:{room}:orderdata     hash order id -> order JSON
-- KEYS[2]  lc:{room}:deadlines     zset order id -> pay-by ms
-- KEYS[3]  lc:{room}:sale:<sale>   sale hash
-- KEYS[4]  lc:{room}:orders        orders stream
-- ARGV[1]  order id
--
-- Reply: a JSON string {"ok":true,"order":{...},"changed":bool}
--        or {"ok":false,"code":"not_found"|"ended","order":{...}?} (ended: it expired first)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then
  return cjson.encode({ok = false, code = 'not_found'})
end
local order = cjson.decode(raw)
if order.status == 'paid' then
  return cjson.encode({ok = true, order = order, changed = false})
end
if order.status ~= 'reserved' then
  return cjson.encode({ok = false, code = 'ended', order = order})
end
-- A payment that arrives after the deadline but before a sweeper ran still counts:
-- the units were never given back, so taking the money is correct.
order.status = 'paid'
order.paid_ms = now
local data = cjson.encode(order)
redis.call('HSET', KEYS[1], ARGV[1], data)
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[3], 'reserved', -order.qty)
redis.call('HINCRBY', KEYS[3], 'paid', order.qty)
redis.call('HINCRBY', KEYS[3], 'paid_cents', order.amount)
redis.call('XADD', KEYS[4], '*', 'type', 'paid', 'order', ARGV[1], 'sale', order.sale,
  'user', order.user, 'qty', order.qty, 'amount', order.amount, 'ts', now, 'data', data)
return cjson.encode({ok = true, order = order, changed = true})

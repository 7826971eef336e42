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
-- KEYS[9]  lc:{room}:meta               room hash (`last` offset)
-- ARGV[1]  user id
-- ARGV[2]  qty (>= 1)
-- ARGV[3]  idempotency key
-- ARGV[4]  payment window ms
-- ARGV[5]  room
-- ARGV[6]  sale id
-- ARGV[7]  room stream maxlen
--
-- Reply: a JSON string, either
--   {"ok":true,"order":id,"status":"reserved","qty":n,"amount":cents,"pay_by_ms":ms,"stock":left}
--   {"ok":false,"code":"not_found"|"not_started"|"ended"|"sold_out"|"limit_reached","stock":left?}
-- A repeated (user, key) gets the first successful reply again, byte for byte.
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

-- Every check passed: write.
local left = redis.call('HINCRBY', KEYS[1], 'stock', -qty)
redis.call('HINCRBY', KEYS[1], 'reserved', qty)
redis.call('HINCRBY', KEYS[2], user, qty)
local n = redis.call('HINCRBY', KEYS[7], 'order', 1)
local order_id = ARGV[5] .. '.o' .. n
local pay_by = now + tonumber(ARGV[4])
local amount = price * qty
local order = cjson.encode({
  id = order_id, room = ARGV[5], sale = ARGV[6], user = user, qty = qty, price = price,
  amount = amount, status = 'reserved', created_ms = now, pay_by_ms = pay_by, key = key,
})
redis.call('HSET', KEYS[4], order_id, order)
redis.call('ZADD', KEYS[5], pay_by, order_id)
redis.call('XADD', KEYS[6], '*', 'type', 'reserved', 'order', order_id, 'sale', ARGV[6],
  'user', user, 'qty', qty, 'amount', amount, 'ts', now, 'data', order)

local reply = cjson.encode({ok = true, order = order_id, status = 'reserved', qty = qty,
  amount = amount, pay_by_ms = pay_by, stock = left})
redis.call('HSET', KEYS[3], idem, reply)

if left == 0 then
  -- The unit that emptied the stock announces it, exactly once per emptying.
  local body = cjson.encode({sale = {id = ARGV[6], phase = 'sold_out', stock = 0}})
  local id = redis.call('XADD', KEYS[8], 'MAXLEN', '~', ARGV[7], '*', 'k', 'sale', 'ts', now, 'd', body)
  redis.call('HSET', KEYS[9], 'last', id)
end
return reply

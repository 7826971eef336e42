-- shop_fence.lua: the sweeper's question to a room about a shop-coupon hold whose deadline
-- passed: did a checkout use it? If no order claimed the hold id yet, the hold id is voided
-- here, so a late buy.lua carrying it is refused: the answer cannot change afterwards.
--
-- KEYS[1]  lc:{room}:shop-holds  hash hold id -> order id (written by buy.lua) or "void"
-- ARGV[1]  hold id
--
-- Reply: the order id that used the hold, or "void"
if redis.call('HSETNX', KEYS[1], ARGV[1], 'void') == 1 then
  return 'void'
end
return redis.call('HGET', KEYS[1], ARGV[1])

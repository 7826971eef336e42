-- soldout_facts.lua: what a node needs to answer late buyers of a sold-out sale itself
-- (commerce/soldout.py), read in one atomic step so the holders match the stock.
--
-- KEYS[1]  lc:{room}:sale:<sale>        sale hash (stock, end_ms, per_user_limit)
-- KEYS[2]  lc:{room}:sale:<sale>:users  hash user -> units held (every user who ever bought
--                                        stays in it, with 0 once their orders expired)
-- ARGV[1]  the most holders a node keeps in memory
--
-- Reply: {} when the sale is missing or its stock is not 0 (nothing to remember),
--        {end_ms, per_user_limit, false} when more than ARGV[1] users hold units,
--        {end_ms, per_user_limit, {user, ...}} otherwise: every user who has bought,
--        so every user with a stored first reply (buy.lua KEYS[3]) is among them.
local s = redis.call('HMGET', KEYS[1], 'stock', 'end_ms', 'per_user_limit')
if not s[1] or tonumber(s[1]) ~= 0 then
  return {}
end
local count = redis.call('HLEN', KEYS[2])
if count > tonumber(ARGV[1]) then
  return {tonumber(s[2]), tonumber(s[3]), false}
end
return {tonumber(s[2]), tonumber(s[3]), redis.call('HKEYS', KEYS[2])}

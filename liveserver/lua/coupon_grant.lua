-- coupon_grant.lua: put one coupon into several users' wallets, atomically and exactly
-- once per grant (a lucky bag's prize at the draw, a quiz's reward to correct voters): the
-- guard field stops a second call (a re-run after a crash, a second node, a retry).
--
-- KEYS[1]     the object that grants (lc:{room}:lottery:<l> or lc:{room}:poll:<p>): the guard
--             field is set here
-- KEYS[1+i]   lc:{room}:claims:<user i>  user i's wallet in this room, i = 1..n
-- ARGV[1]     coupon id (`<lottery>.prize`, `<poll>.reward`)
-- ARGV[2]     the wallet entry JSON without counts {coupon_id, room, title, amount, min_spend, expires_ms}
-- ARGV[3]     guard field name (`granted`)
--
-- Reply: the number of wallets this call credited, or -1 when this grant already ran
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('HSETNX', KEYS[1], ARGV[3], now) == 0 then
  return -1
end
for i = 2, #KEYS do
  local entry = cjson.decode(ARGV[2])
  local before = redis.call('HGET', KEYS[i], ARGV[1])
  if before then
    entry = cjson.decode(before)
    entry.count = tonumber(entry.count or 1) + 1
  else
    entry.count, entry.used, entry.orders, entry.claimed_ms = 1, 0, {}, now
  end
  redis.call('HSET', KEYS[i], ARGV[1], cjson.encode(entry))
end
return #KEYS - 1

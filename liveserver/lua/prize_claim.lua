-- prize_claim.lua: a lottery winner leaves a shipping address for the prize, once, within the
-- claim window after the draw (unclaimed prizes expire: drawn_ms + claim_ms).
--
-- KEYS[1]  lc:{room}:lottery:<lottery>         lottery hash (result JSON, drawn_ms, claim_ms)
-- KEYS[2]  lc:{room}:lottery:<lottery>:claims  hash winner -> claim JSON
-- ARGV[1]  user
-- ARGV[2]  claim JSON {name, phone, address}
--
-- Reply: {1, claim_until_ms}  stored
--        {0, code}            code = not_found | not_started (not drawn) | forbidden (not a winner)
--                             | ended (the claim window closed) | already_claimed
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local l = redis.call('HMGET', KEYS[1], 'phase', 'result', 'drawn_ms', 'claim_ms')
if not l[1] then
  return {0, 'not_found'}
end
if not l[2] then
  return {0, 'not_started'}
end
local winner = false
for _, w in ipairs(cjson.decode(l[2]).winners) do
  if w == ARGV[1] then winner = true end
end
if not winner then
  return {0, 'forbidden'}
end
local until_ms = tonumber(l[3]) + tonumber(l[4] or '86400000')
if now >= until_ms then
  return {0, 'ended'}
end
local claim = cjson.decode(ARGV[2])
claim.user = ARGV[1]
claim.claimed_ms = now
if redis.call('HSETNX', KEYS[2], ARGV[1], cjson.encode(claim)) == 0 then
  return {0, 'already_claimed'}
end
return {1, until_ms}

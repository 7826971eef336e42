-- invite.lua: a first-time viewer who came through an inviter's share link (?ref=) earns
-- the inviter the room's invite coupon. Every rule in one atomic step: never for oneself,
-- once per invitee (and only for a viewer new to the room), at most `per_inviter` per inviter.
--
-- KEYS[1]  lc:{room}:invite            hash: the room's invite coupon (title, amount, min_spend,
--                                       expires_ms, per_inviter); absent = no invite reward
-- KEYS[2]  lc:{room}:seen              set of users who have been in the room (invitees included)
-- KEYS[3]  lc:{room}:invitees          hash invitee -> inviter
-- KEYS[4]  lc:{room}:inviters          hash inviter -> invite coupons earned
-- KEYS[5]  lc:{room}:claims:<inviter>  the inviter's wallet in this room
-- ARGV[1]  invitee (the caller)
-- ARGV[2]  inviter (`ref`)
-- ARGV[3]  coupon id (`<room>.invite`)
-- ARGV[4]  room
--
-- Reply: JSON {"ok":true,"inviter":ref,"earned":n}
--        or {"ok":false,"code":"not_found"|"forbidden"|"already_claimed"|"limit_reached","reason":...}
--        reasons: no_invite | self | not_first_time | counted | cap
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local invitee, inviter = ARGV[1], ARGV[2]
local c = redis.call('HMGET', KEYS[1], 'title', 'amount', 'min_spend', 'expires_ms', 'per_inviter')
if not c[1] then
  return cjson.encode({ok = false, code = 'not_found', reason = 'no_invite'})
end
if invitee == inviter then
  return cjson.encode({ok = false, code = 'forbidden', reason = 'self'})
end
local before = redis.call('HGET', KEYS[3], invitee)
if before then
  return cjson.encode({ok = false, code = 'already_claimed', reason = 'counted', inviter = before})
end
if redis.call('SISMEMBER', KEYS[2], invitee) == 1 then
  return cjson.encode({ok = false, code = 'already_claimed', reason = 'not_first_time'})
end
local earned = tonumber(redis.call('HGET', KEYS[4], inviter) or '0')
if earned >= tonumber(c[5]) then
  redis.call('SADD', KEYS[2], invitee)  -- the invitee is in the room now either way
  return cjson.encode({ok = false, code = 'limit_reached', reason = 'cap', cap = tonumber(c[5])})
end

redis.call('SADD', KEYS[2], invitee)
redis.call('HSET', KEYS[3], invitee, inviter)
earned = redis.call('HINCRBY', KEYS[4], inviter, 1)
local entry = {coupon_id = ARGV[3], room = ARGV[4], title = c[1], amount = tonumber(c[2]),
               min_spend = tonumber(c[3]), expires_ms = tonumber(c[4]), count = 1, used = 0, orders = {},
               claimed_ms = now}
local raw = redis.call('HGET', KEYS[5], ARGV[3])
if raw then
  entry = cjson.decode(raw)
  entry.count = tonumber(entry.count or 1) + 1
end
redis.call('HSET', KEYS[5], ARGV[3], cjson.encode(entry))
return cjson.encode({ok = true, inviter = inviter, earned = earned})

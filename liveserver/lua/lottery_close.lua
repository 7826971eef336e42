-- lottery_close.lua: stop taking entries and return the frozen entrant list.
-- Idempotent: every caller (node, worker, host API) gets the same list, so every
-- caller computes the same winners from it.
--
-- KEYS[1]  lc:{room}:lottery:<lottery>           lottery hash
-- KEYS[2]  lc:{room}:lottery:<lottery>:entrants  set of user ids
-- ARGV     (none)
--
-- Reply: {phase_before, seed, winners_n, entrant, entrant, ...}
--        or {} when the lottery does not exist
local phase = redis.call('HGET', KEYS[1], 'phase')
if not phase then
  return {}
end
if phase == 'live' then
  redis.call('HSET', KEYS[1], 'phase', 'closed')
end
local out = {phase, redis.call('HGET', KEYS[1], 'seed'), redis.call('HGET', KEYS[1], 'winners')}
for _, user in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  out[#out + 1] = user
end
return out

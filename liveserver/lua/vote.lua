-- vote.lua: one vote per user in a poll.
--
-- KEYS[1]  lc:{room}:poll:<poll>          poll hash (options, start_ms, end_ms)
-- KEYS[2]  lc:{room}:poll:<poll>:voters   hash user -> option
-- KEYS[3]  lc:{room}:poll:<poll>:tallies  hash option index -> votes
-- ARGV[1]  user id
-- ARGV[2]  option index (0-based)
--
-- Reply: {1, tally0, tally1, ...}  counted
--        {0, code}                  code = not_found | not_started | ended | bad_option | already_claimed
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local p = redis.call('HMGET', KEYS[1], 'options', 'start_ms', 'end_ms')
if not p[1] then
  return {0, 'not_found'}
end
local options, option = tonumber(p[1]), tonumber(ARGV[2])
if now < tonumber(p[2]) then
  return {0, 'not_started'}
end
if now >= tonumber(p[3]) then
  return {0, 'ended'}
end
if option < 0 or option >= options then
  return {0, 'bad_option'}
end
if redis.call('HSETNX', KEYS[2], ARGV[1], option) == 0 then
  return {0, 'already_claimed'}
end
redis.call('HINCRBY', KEYS[3], option, 1)
local out = {1}
for i = 0, options - 1 do
  out[#out + 1] = tonumber(redis.call('HGET', KEYS[3], i) or '0')
end
return out

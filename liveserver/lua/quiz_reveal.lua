-- quiz_reveal.lua: reveal a quiz's correct option, once; voting closes at that moment
-- (end_ms moves to now if it was later), so the correct voters are final.
--
-- KEYS[1]  lc:{room}:poll:<poll>  poll hash (options, end_ms, correct)
-- ARGV[1]  correct option index (0-based)
--
-- Reply: {1, correct, end_ms}  revealed by this call
--        {2, correct, end_ms}  already revealed (the first answer stands)
--        {0, code}             code = not_found | bad_option
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local p = redis.call('HMGET', KEYS[1], 'options', 'end_ms', 'correct')
if not p[1] then
  return {0, 'not_found'}
end
if p[3] then
  return {2, tonumber(p[3]), tonumber(p[2])}
end
local option = tonumber(ARGV[1])
if option < 0 or option >= tonumber(p[1]) then
  return {0, 'bad_option'}
end
local end_ms = math.min(tonumber(p[2]), now)
redis.call('HSET', KEYS[1], 'correct', option, 'end_ms', end_ms)
return {1, option, end_ms}

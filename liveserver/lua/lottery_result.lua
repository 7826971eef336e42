-- lottery_result.lua: record the draw and publish `lottery_result`, exactly once.
--
-- KEYS[1]  lc:{room}:lottery:<lottery>  lottery hash
-- KEYS[2]  lc:{room}:ev                 room event stream
-- KEYS[3]  lc:{room}:meta               room hash (`last`, `trimmed`, `epoch`: see _append_event)
-- ARGV[1]  result JSON {lottery_id, winners, seed, commit, entrants}
-- ARGV[2]  room stream maxlen
--
-- Reply: the stored result JSON (this call's, or the first caller's)
--! include _append_event
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local stored = redis.call('HGET', KEYS[1], 'result')
if stored then
  return stored
end
redis.call('HSET', KEYS[1], 'result', ARGV[1], 'phase', 'drawn', 'drawn_ms', now)
append_event(KEYS[2], KEYS[3], 'lottery_result', ARGV[1], ARGV[2], now)
return ARGV[1]

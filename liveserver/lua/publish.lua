-- publish.lua: append one event to a room's stream, atomically with its side effects.
--
-- KEYS[1]  lc:{room}:ev      the room event stream
-- KEYS[2]  lc:{room}:meta    room hash (epoch, last, trimmed, pinned state)
-- KEYS[3]  lc:{room}:mutes   hash user -> muted-until ms
-- KEYS[4]  a hash of the room holding the once-flag (the meta hash when unused)
-- ARGV[1]  kind              event kind (`danmaku`, `card`, `notice`, ...)
-- ARGV[2]  body              the event body as JSON (without k/offset/ts)
-- ARGV[3]  maxlen            approximate stream length kept for resume
-- ARGV[4]  user              user to check against mutes ("" = no check)
-- ARGV[5]  (unused; kept so callers' ARGV positions stay put: _append_event renews the epoch)
-- ARGV[6]  once-flag field   "" = always publish; else publish only if KEYS[4] has no
--                             such field yet (scheduled jobs: fire exactly once)
-- ARGV[7..] field, value     pairs HSET into meta with the event (pinned state)
--
-- Reply: {1, offset, ts_ms}            the event was appended
--        {0, "muted", until_ms}        the user is muted; nothing written
--        {0, "done", 0}                the once-flag was already set; nothing written
--
-- Time comes from Redis TIME so every node agrees on `ts`.
--! include _append_event
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

if ARGV[4] ~= '' then
  local until_ms = tonumber(redis.call('HGET', KEYS[3], ARGV[4]) or '0')
  if until_ms > now then
    return {0, 'muted', until_ms}
  end
end

if ARGV[6] ~= '' and redis.call('HSETNX', KEYS[4], ARGV[6], now) == 0 then
  return {0, 'done', 0}
end

local id = append_event(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], now)
for i = 7, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
return {1, id, now}

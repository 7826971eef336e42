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
-- ARGV[5]  epoch             a fresh epoch, used only if the stream was lost
-- ARGV[6]  once-flag field   "" = always publish; else publish only if KEYS[4] has no
--                             such field yet (scheduled jobs: fire exactly once)
-- ARGV[7..] field, value     pairs HSET into meta with the event (pinned state)
--
-- Reply: {1, offset, ts_ms}            the event was appended
--        {0, "muted", until_ms}        the user is muted; nothing written
--        {0, "done", 0}                the once-flag was already set; nothing written
--
-- Time comes from Redis TIME so every node agrees on `ts`.
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

-- A stream that had events and is gone now (flushed, lost on failover) means the
-- history a client resumes from is gone: a new epoch tells clients not to trust `since`.
if redis.call('EXISTS', KEYS[1]) == 0 and redis.call('HEXISTS', KEYS[2], 'last') == 1 then
  redis.call('HSET', KEYS[2], 'epoch', ARGV[5])
end

local before = redis.call('XLEN', KEYS[1])
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'k', ARGV[1], 'ts', now, 'd', ARGV[2])
-- Remember that trimming ever dropped history: a viewer that joined the room while its
-- stream was empty resumes from "0-0", which is only safe if nothing was ever dropped.
if redis.call('XLEN', KEYS[1]) <= before then
  redis.call('HSET', KEYS[2], 'trimmed', '1')
end
redis.call('HSET', KEYS[2], 'last', id)
redis.call('HINCRBY', KEYS[2], 'n_' .. ARGV[1], 1)
for i = 7, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
return {1, id, now}

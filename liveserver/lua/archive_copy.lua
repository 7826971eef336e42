-- archive_copy.lua: copy a room's newest events into its archive, in order and once, and
-- trim the live stream once the archive holds all of it.
-- The archive's own last id is the cursor, so the copy needs no consumer group: two
-- archivers copying the same room at once can neither skip nor reorder an entry (each
-- call is atomic and starts after what the archive already holds). The writers of the
-- stream (_append_event.lua) trim only at 10x MAXLEN; the trim to MAXLEN happens here,
-- when every entry is archived, so no event leaves the stream before it is in the archive.
--
-- KEYS[1]  lc:{room}:ev       the live stream
-- KEYS[2]  lc:{room}:archive  the archive: every event, same ids, never trimmed
-- KEYS[3]  lc:{room}:meta     room hash: `last` (the last event's id, _append_event),
--                             `archived_last` (archivers skip the room while it equals
--                             `last`), `trimmed` (= 1 once trimming dropped an entry)
-- ARGV[1]  count: at most this many events per call
-- ARGV[2]  maxlen: LIVESERVER_STREAM_MAXLEN, the approximate length the stream keeps
-- Reply: {copied, more}: events copied now; more = 1 when the stream holds events after
-- the last one copied (call again at once; the stream is trimmed when none are left).
local count = tonumber(ARGV[1])
local top = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
local after = '0-0'
if top[1] then
  after = top[1][1]
end
local rows = redis.call('XRANGE', KEYS[1], '(' .. after, '+', 'COUNT', count + 1)
local more = 0
if #rows > count then
  more = 1
  rows[#rows] = nil
end
for _, row in ipairs(rows) do
  redis.call('XADD', KEYS[2], row[1], unpack(row[2]))
end
if more == 1 then
  redis.call('HSET', KEYS[3], 'archived_last', rows[#rows][1])
else
  -- Caught up: all the stream holds is archived. The room counts as archived up to its
  -- last event, even one a lost stream no longer holds, so archivers skip it until the
  -- next event.
  if redis.call('XTRIM', KEYS[1], 'MAXLEN', '~', ARGV[2]) > 0 then
    redis.call('HSET', KEYS[3], 'trimmed', '1')
  end
  local last = redis.call('HGET', KEYS[3], 'last')
  if last then
    redis.call('HSET', KEYS[3], 'archived_last', last)
  end
end
return {#rows, more}

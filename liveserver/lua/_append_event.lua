-- _append_event.lua: the one way a script appends a room event (a fragment, not a script).
-- A script that needs it says `--! include _append_event` where the function must be
-- defined; ScriptRunner pastes this file there before loading (EVALSHA of the result),
-- so every writer of the room stream keeps the same bookkeeping.
--
-- append_event(stream, meta, kind, body, maxlen, now) -> entry id
--   stream  lc:{room}:ev    the room event stream
--   meta    lc:{room}:meta  room hash: epoch, last, trimmed, n_<kind>
--   kind    event kind; body: the event body as JSON; maxlen: LIVESERVER_STREAM_MAXLEN
--   now     Redis TIME in ms (the caller's, so `ts` agrees with what it wrote)
-- Effects, in order:
--   * a stream that had events and is gone now (flushed, lost on failover) means the
--     history clients resume from is gone: a new epoch tells them not to trust `since`,
--     and the new stream's first id is still after `last`, so offsets only ever grow;
--   * XADD ... MAXLEN ~ APPEND_BACKLOG x maxlen: a writer trims only a backlog the archiver
--     left far behind (none runs); trimming to maxlen is archive_copy.lua's, once every
--     event is in the archive, so no event leaves the stream before it is archived;
--   * `trimmed` = 1 once trimming ever dropped an entry (resume from "0-0" trusts it);
--   * `last` = the new id; `n_<kind>` counts events per kind (stats).
local APPEND_BACKLOG = 10
-- The first id of a new stream after `last`: a new stream would otherwise number from the
-- clock, and within the same millisecond as `last` (or after a failover to a node whose
-- clock is behind) that id is not after `last`; the archive copies only ids after its own
-- last one, so such an event would never be archived, and offsets would go backwards.
local function after_id(last, now)
  local ms, seq = string.match(last, '^(%d+)-(%d+)$')
  if ms == nil then
    return '*'
  end
  if now > tonumber(ms) then
    return string.format('%.0f-0', now)
  end
  return ms .. '-' .. (tonumber(seq) + 1)
end
local function append_event(stream, meta, kind, body, maxlen, now)
  local next_id = '*'
  if redis.call('EXISTS', stream) == 0 then
    local last = redis.call('HGET', meta, 'last')
    if last then
      local old = redis.call('HGET', meta, 'epoch') or ''
      redis.call('HSET', meta, 'epoch', string.sub(redis.sha1hex(old .. ':' .. now .. ':' .. stream), 1, 12))
      next_id = after_id(last, now)
    end
  end
  local before = redis.call('XLEN', stream)
  local id = redis.call('XADD', stream, 'MAXLEN', '~', tonumber(maxlen) * APPEND_BACKLOG, next_id, 'k', kind, 'ts', now, 'd', body)
  if redis.call('XLEN', stream) <= before then
    redis.call('HSET', meta, 'trimmed', '1')
  end
  redis.call('HSET', meta, 'last', id)
  redis.call('HINCRBY', meta, 'n_' .. kind, 1)
  return id
end

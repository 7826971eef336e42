-- media_owner.lua: which media process runs a room's live video (one owner at a time).
--
-- KEYS[1]  lc:{room}:media:owner   string: the owner's base URL, with a TTL (heartbeat)
-- ARGV[1]  op      `claim` (take it if free or already ours, refresh the TTL),
--                  `refresh` (extend the TTL only if ours), `release` (delete only if ours)
-- ARGV[2]  owner   the caller's base URL
-- ARGV[3]  ttl_ms  lease length for claim/refresh
--
-- Reply: the owner after the call ("" when nobody owns the room).
local current = redis.call('GET', KEYS[1])
local op = ARGV[1]
if op == 'claim' then
  if not current or current == ARGV[2] then
    redis.call('SET', KEYS[1], ARGV[2], 'PX', tonumber(ARGV[3]))
    return ARGV[2]
  end
  return current
elseif op == 'refresh' then
  if current == ARGV[2] then
    redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
  end
  return current or ''
elseif op == 'release' then
  if current == ARGV[2] then
    redis.call('DEL', KEYS[1])
    return ''
  end
  return current or ''
end
return redis.error_reply('media_owner: unknown op ' .. tostring(op))

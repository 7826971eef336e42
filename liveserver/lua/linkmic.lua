-- linkmic.lua: the link-mic (co-host) state of one room, every transition atomic.
--
-- KEYS[1]  lc:{room}:linkmic   hash:
--            allow        "1" while the host takes requests
--            q:<user>     name of a viewer waiting in the queue (nq: how many)
--            on:<user>    name of an accepted guest (non: how many), at:<user> accepted ms
--            tok:<user>   jti of the guest's unused co-host token
--            count, ms    link-mics accepted, guest milliseconds on camera (stats)
-- ARGV[1]  op:
--            request  ARGV[2] user, ARGV[3] name, ARGV[4] max queue
--            cancel   ARGV[2] user, ARGV[3] now_ms   (a queued viewer leaves the queue,
--                     or an accepted guest leaves: then as `end`)
--            accept   ARGV[2] user, ARGV[3] now_ms, ARGV[4] max guests
--            end      ARGV[2] user, ARGV[3] now_ms   (a guest ends; a queued request is declined)
--            allow    ARGV[2] "1" | "0"
--            token    ARGV[2] user, ARGV[3] jti      (record the guest's new token)
--            consume  ARGV[2] user, ARGV[3] jti      (a WHIP publish uses the token, once)
--
-- Reply: {1, name, was, ms} on success (was: "q" a queued request, "on" a guest; ms: the
-- guest's milliseconds for `end`), or {0, code} with code one of not_started (requests are
-- closed), already_claimed, not_found, limit_reached, unauthorized.
local key, op = KEYS[1], ARGV[1]

local function finish(user, now)
  local name = redis.call('HGET', key, 'on:' .. user)
  if name then
    local at = tonumber(redis.call('HGET', key, 'at:' .. user) or now)
    local ms = math.max(0, tonumber(now) - at)
    redis.call('HDEL', key, 'on:' .. user, 'at:' .. user, 'tok:' .. user)
    redis.call('HINCRBY', key, 'non', -1)
    redis.call('HINCRBY', key, 'ms', ms)
    return {1, name, 'on', ms}
  end
  name = redis.call('HGET', key, 'q:' .. user)
  if name then
    redis.call('HDEL', key, 'q:' .. user)
    redis.call('HINCRBY', key, 'nq', -1)
    return {1, name, 'q', 0}
  end
  return {0, 'not_found'}
end

if op == 'request' then
  local user = ARGV[2]
  if redis.call('HGET', key, 'allow') ~= '1' then return {0, 'not_started'} end
  if redis.call('HEXISTS', key, 'on:' .. user) == 1 or redis.call('HEXISTS', key, 'q:' .. user) == 1 then
    return {0, 'already_claimed'}
  end
  if tonumber(redis.call('HGET', key, 'nq') or '0') >= tonumber(ARGV[4]) then return {0, 'limit_reached'} end
  redis.call('HSET', key, 'q:' .. user, ARGV[3])
  redis.call('HINCRBY', key, 'nq', 1)
  return {1, ARGV[3], 'q', 0}
elseif op == 'cancel' or op == 'end' then
  return finish(ARGV[2], ARGV[3])
elseif op == 'accept' then
  local user = ARGV[2]
  local name = redis.call('HGET', key, 'q:' .. user)
  if not name then
    if redis.call('HEXISTS', key, 'on:' .. user) == 1 then return {0, 'already_claimed'} end
    return {0, 'not_found'}
  end
  if tonumber(redis.call('HGET', key, 'non') or '0') >= tonumber(ARGV[4]) then return {0, 'limit_reached'} end
  redis.call('HDEL', key, 'q:' .. user)
  redis.call('HINCRBY', key, 'nq', -1)
  redis.call('HSET', key, 'on:' .. user, name, 'at:' .. user, ARGV[3])
  redis.call('HINCRBY', key, 'non', 1)
  redis.call('HINCRBY', key, 'count', 1)
  return {1, name, 'on', 0}
elseif op == 'allow' then
  redis.call('HSET', key, 'allow', ARGV[2])
  return {1, '', '', 0}
elseif op == 'token' then
  local name = redis.call('HGET', key, 'on:' .. ARGV[2])
  if not name then return {0, 'not_found'} end
  redis.call('HSET', key, 'tok:' .. ARGV[2], ARGV[3])
  return {1, name, 'on', 0}
elseif op == 'consume' then
  local name = redis.call('HGET', key, 'on:' .. ARGV[2])
  if not name or redis.call('HGET', key, 'tok:' .. ARGV[2]) ~= ARGV[3] then return {0, 'unauthorized'} end
  redis.call('HDEL', key, 'tok:' .. ARGV[2])
  return {1, name, 'on', 0}
end
return redis.error_reply('linkmic.lua: unknown op ' .. tostring(op))

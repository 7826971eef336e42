-- group_close.lua: fail one group-buy team whose window ended unfilled, exactly once: its
-- members' units go back to stock and their orders become `failed`.
-- Any node may call it for the same team at the same time (every node's sweeper looks at
-- lc:{room}:group-deadlines): only the call that finds the team still `open` and past its
-- deadline changes anything, and it flips the team to `failed` in the same atomic step.
--
-- KEYS[1]  lc:{room}:group:<g>            group hash
-- KEYS[2]  lc:{room}:group:<g>:teams      hash team id -> team JSON
-- KEYS[3]  lc:{room}:group:<g>:users      hash user -> teams counted against per_user_limit
-- KEYS[4]  lc:{room}:group-deadlines      zset open team id -> window end ms
-- KEYS[5]  lc:{room}:orderdata            hash order id -> order JSON
-- KEYS[6]  lc:{room}:orders               orders stream
-- KEYS[7]  lc:{room}:ev                   room event stream (`group` event, phase failed)
-- KEYS[8]  lc:{room}:meta                 room hash (see _append_event)
-- ARGV[1]  team id
-- ARGV[2]  room stream maxlen
--
-- Reply: 1 when this call failed the team, 0 when there was nothing to do (completed,
--        already failed, not yet due, unknown).
--! include _append_event
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local raw = redis.call('HGET', KEYS[2], ARGV[1])
if not raw then
  redis.call('ZREM', KEYS[4], ARGV[1])
  return 0
end
local team = cjson.decode(raw)
if team.status ~= 'open' then
  redis.call('ZREM', KEYS[4], ARGV[1])
  return 0
end
if tonumber(team.deadline_ms) > now then
  return 0
end

team.status = 'failed'
team.failed_ms = now
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode(team))
redis.call('ZREM', KEYS[4], ARGV[1])
local n = #team.members
local left = redis.call('HINCRBY', KEYS[1], 'stock', n)
redis.call('HINCRBY', KEYS[1], 'open_units', -n)
redis.call('HINCRBY', KEYS[1], 'failed', n)
redis.call('HINCRBY', KEYS[1], 'teams_open', -1)
redis.call('HINCRBY', KEYS[1], 'teams_failed', 1)
local names, users = {}, {}
for i, m in ipairs(team.members) do
  names[i] = m.name
  users[i] = m.user
  redis.call('HINCRBY', KEYS[3], m.user, -1)
  local o = cjson.decode(redis.call('HGET', KEYS[5], m.order))
  o.status = 'failed'
  o.failed_ms = now
  redis.call('HSET', KEYS[5], m.order, cjson.encode(o))
  redis.call('XADD', KEYS[6], '*', 'type', 'group_failed', 'order', m.order, 'group', team.group,
    'team', ARGV[1], 'user', m.user, 'qty', 1, 'amount', o.amount, 'ts', now)
end
local teams_open = tonumber(redis.call('HGET', KEYS[1], 'teams_open'))
append_event(KEYS[7], KEYS[8], 'group', cjson.encode({group = {
  id = team.group, team = ARGV[1], phase = 'failed', members = names, users = users, size = team.size,
  stock = left, teams_open = teams_open}}), ARGV[2], now)
return 1

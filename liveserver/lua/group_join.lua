-- group_join.lua: open a group-buy team or join one, reserving one unit, atomically.
-- Cannot oversell or overfill: every check runs before the first write; stock only moves
-- here (down, after `stock >= 1`) and in group_close.lua (up, once per failed team, because
-- it flips the team from `open` to `failed` in the same step). Invariant at every instant:
--   stock + open_units + sold == initial, and no team has more than `size` members.
--
-- KEYS[1]  lc:{room}:group:<g>            group hash (price, size, initial, stock, open_units, sold,
--                                          failed, teams_open, teams_done, teams_failed,
--                                          per_user_limit, team_window_ms, start_ms, end_ms)
-- KEYS[2]  lc:{room}:group:<g>:teams      hash team id -> team JSON {id, group, status, size,
--                                          deadline_ms, created_ms, members: [{user, name, order}]}
-- KEYS[3]  lc:{room}:group:<g>:users      hash user -> teams counted against per_user_limit
-- KEYS[4]  lc:{room}:group:<g>:keys       hash "<user> <key>" -> first final reply
-- KEYS[5]  lc:{room}:group-deadlines      zset open team id -> window end ms (the sweeper closes them)
-- KEYS[6]  lc:{room}:orderdata            hash order id -> order JSON
-- KEYS[7]  lc:{room}:orders               orders stream
-- KEYS[8]  lc:{room}:seq                  hash of id counters
-- KEYS[9]  lc:{room}:ev                   room event stream (`group` events)
-- KEYS[10] lc:{room}:meta                 room hash (see _append_event)
-- ARGV[1]  user id
-- ARGV[2]  user display name
-- ARGV[3]  idempotency key
-- ARGV[4]  team id to join, or "" to open a new team
-- ARGV[5]  room
-- ARGV[6]  group id
-- ARGV[7]  room stream maxlen
--
-- Reply: a JSON string, either
--   {"ok":true,"group":g,"team":t,"members":[names],"size":n,"deadline_ms":ms,"order":id,
--    "status":"open"|"completed","stock":left}
--   {"ok":false,"code":"not_found"|"not_started"|"ended"|"sold_out"|"limit_reached"|"already_claimed",
--    "reason":...?}  (sold_out with reason "team_full" when the team is full)
-- A repeated (user, key) gets the first final reply again, byte for byte: a success, or a
-- refusal that the deal's state decided (ended, sold_out, limit_reached, already_claimed), so
-- two copies of one request racing a returned unit cannot get two different answers. Not
-- stored: not_found and not_started (nothing happened yet; the same key may try again).
--! include _append_event
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local user, name, key, team_id = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

local idem = user .. ' ' .. key
local first = redis.call('HGET', KEYS[4], idem)
if first then
  return first
end

-- A refusal decided by the deal's state is this key's final answer (its only write).
local function final(reply)
  local encoded = cjson.encode(reply)
  redis.call('HSET', KEYS[4], idem, encoded)
  return encoded
end

local g = redis.call('HMGET', KEYS[1], 'stock', 'size', 'per_user_limit', 'team_window_ms', 'start_ms', 'end_ms', 'price')
if not g[1] then
  return cjson.encode({ok = false, code = 'not_found'})
end
local stock, size, limit = tonumber(g[1]), tonumber(g[2]), tonumber(g[3])
local window, start_ms, end_ms, price = tonumber(g[4]), tonumber(g[5]), tonumber(g[6]), tonumber(g[7])
if now < start_ms then
  return cjson.encode({ok = false, code = 'not_started', start_ms = start_ms})
end

local team
if team_id == '' then
  if now >= end_ms then
    return final({ok = false, code = 'ended'})
  end
else
  local raw = redis.call('HGET', KEYS[2], team_id)
  if not raw then
    return cjson.encode({ok = false, code = 'not_found', reason = 'no_team'})
  end
  team = cjson.decode(raw)
  if team.status ~= 'open' or now >= tonumber(team.deadline_ms) then
    return final({ok = false, code = 'ended', reason = 'team_' .. team.status})
  end
  for _, m in ipairs(team.members) do
    if m.user == user then
      return final({ok = false, code = 'already_claimed', reason = 'in_team', team = team_id})
    end
  end
  if #team.members >= size then
    return final({ok = false, code = 'sold_out', reason = 'team_full'})
  end
end
local held = tonumber(redis.call('HGET', KEYS[3], user) or '0')
if held >= limit then
  return final({ok = false, code = 'limit_reached', held = held, limit = limit})
end
if stock < 1 then
  return final({ok = false, code = 'sold_out', stock = stock})
end

-- Every check passed: write.
local left = redis.call('HINCRBY', KEYS[1], 'stock', -1)
redis.call('HINCRBY', KEYS[1], 'open_units', 1)
redis.call('HINCRBY', KEYS[3], user, 1)
if not team then
  local n = redis.call('HINCRBY', KEYS[1], 'tseq', 1)
  team_id = ARGV[6] .. '.t' .. n
  team = {id = team_id, group = ARGV[6], status = 'open', size = size, created_ms = now,
          deadline_ms = math.min(now + window, end_ms), members = {}}
  redis.call('HINCRBY', KEYS[1], 'teams_open', 1)
  redis.call('ZADD', KEYS[5], team.deadline_ms, team_id)
end
local n = redis.call('HINCRBY', KEYS[8], 'order', 1)
local order_id = ARGV[5] .. '.o' .. n
local order = {id = order_id, room = ARGV[5], group = ARGV[6], team = team_id, user = user, qty = 1,
               price = price, amount = price, status = 'pending', created_ms = now, key = key}
redis.call('HSET', KEYS[6], order_id, cjson.encode(order))
redis.call('XADD', KEYS[7], '*', 'type', 'group_pending', 'order', order_id, 'group', ARGV[6], 'team', team_id,
  'user', user, 'qty', 1, 'amount', price, 'ts', now)
team.members[#team.members + 1] = {user = user, name = name, order = order_id}

local names = {}
for i, m in ipairs(team.members) do
  names[i] = m.name
end
local phase = 'team'
if #team.members >= size then
  -- The team is full: every member's order is confirmed at the group price.
  team.status = 'completed'
  team.completed_ms = now
  phase = 'completed'
  redis.call('HINCRBY', KEYS[1], 'open_units', -size)
  redis.call('HINCRBY', KEYS[1], 'sold', size)
  redis.call('HINCRBY', KEYS[1], 'teams_open', -1)
  redis.call('HINCRBY', KEYS[1], 'teams_done', 1)
  redis.call('ZREM', KEYS[5], team_id)
  for _, m in ipairs(team.members) do
    local o = cjson.decode(redis.call('HGET', KEYS[6], m.order))
    o.status = 'confirmed'
    o.confirmed_ms = now
    redis.call('HSET', KEYS[6], m.order, cjson.encode(o))
    redis.call('XADD', KEYS[7], '*', 'type', 'group_confirmed', 'order', m.order, 'group', ARGV[6],
      'team', team_id, 'user', m.user, 'qty', 1, 'amount', o.amount, 'ts', now)
  end
end
redis.call('HSET', KEYS[2], team_id, cjson.encode(team))

local teams_open = tonumber(redis.call('HGET', KEYS[1], 'teams_open'))
append_event(KEYS[9], KEYS[10], 'group', cjson.encode({group = {
  id = ARGV[6], team = team_id, phase = phase, members = names, size = size, deadline_ms = team.deadline_ms,
  stock = left, teams_open = teams_open}}), ARGV[7], now)

local reply = cjson.encode({ok = true, group = ARGV[6], team = team_id, members = names, size = size,
  deadline_ms = team.deadline_ms, order = order_id, status = team.status, stock = left})
redis.call('HSET', KEYS[4], idem, reply)
return reply

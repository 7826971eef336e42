-- shop_settle.lua: settle a shop-wide coupon's hold, or give back a use (merchant slot).
-- Idempotent in every mode, so a retry, a second node or the sweeper can run it again.
--
-- KEYS[1]  lc:{m:<merchant>}:wallet:<user>  (see shop_hold.lua)
-- KEYS[2]  lc:{m:<merchant>}:holds          zset of open holds
-- ARGV[1]  mode: commit | release | unuse
-- ARGV[2]  user
-- ARGV[3]  coupon id
-- ARGV[4]  hold id (commit, release; unuse: the order's hold)
-- ARGV[5]  order id (commit, unuse)
-- ARGV[6]  room of the order (commit)
--
-- commit:  the hold becomes a use by the order (used += 1, orders[order] = room)
-- release: the hold is dropped (the checkout failed or never happened)
-- unuse:   the order expired unpaid: orders[order] removed, used -= 1 (once per order);
--          while the order's hold is still open (not yet committed) nothing changes and the
--          reply is -1: the caller retries after the hold is settled
-- Reply: 1 when this call changed something, 0 otherwise (-1: see unuse)
local raw = redis.call('HGET', KEYS[1], ARGV[3])
local member = ARGV[2] .. '\31' .. ARGV[3] .. '\31' .. ARGV[4]
if not raw then
  redis.call('ZREM', KEYS[2], member)
  return 0
end
local e = cjson.decode(raw)
if type(e.holds) ~= 'table' then e.holds = {} end
if type(e.orders) ~= 'table' then e.orders = {} end
local changed = 0
if ARGV[1] == 'commit' then
  if e.holds[ARGV[4]] then
    e.holds[ARGV[4]] = nil
    if not e.orders[ARGV[5]] then
      e.orders[ARGV[5]] = ARGV[6]
      e.used = tonumber(e.used or 0) + 1
    end
    changed = 1
  end
  redis.call('ZREM', KEYS[2], member)
elseif ARGV[1] == 'release' then
  if e.holds[ARGV[4]] then
    e.holds[ARGV[4]] = nil
    changed = 1
  end
  redis.call('ZREM', KEYS[2], member)
elseif ARGV[1] == 'unuse' then
  if e.holds[ARGV[4]] then
    return -1
  end
  if e.orders[ARGV[5]] then
    e.orders[ARGV[5]] = nil
    e.used = math.max(0, tonumber(e.used or 0) - 1)
    changed = 1
  end
end
if changed == 1 then
  redis.call('HSET', KEYS[1], ARGV[3], cjson.encode(e))
end
return changed

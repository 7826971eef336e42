-- webhook_claim.lua: take up to N due deliveries for one worker, with a lease.
-- A claimed delivery gets the score now + lease: if the worker dies mid-attempt, the
-- delivery is due again when the lease runs out (at-least-once); while the lease runs,
-- no other worker takes it (two workers never attempt the same delivery at once).
--
-- KEYS[1]  lc:{wh}:due   zset delivery id -> due ms (or lease end ms while claimed)
-- KEYS[2]  lc:{wh}:dl    hash delivery id -> delivery JSON (hook, event, attempts, ...)
-- ARGV[1]  max deliveries to claim
-- ARGV[2]  lease ms
--
-- Reply: {now_ms, next_ms, id1, data1, id2, data2, ...}; a delivery without data is dropped.
-- next_ms is the earliest score still in KEYS[1] after the claim (a retry's due time, a
-- lease's end) or "" when it is empty: the worker sleeps until then instead of polling.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local out = {now, ''}
for _, id in ipairs(due) do
  local data = redis.call('HGET', KEYS[2], id)
  if data then
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), id)
    out[#out + 1] = id
    out[#out + 1] = data
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
out[2] = nxt[2] or ''
return out

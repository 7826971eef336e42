-- jobs_claim.lua: claim due scheduled jobs (sale start/end, coupon drops, lottery draws,
-- poll ends) so that each fires once across all nodes, and survives a crash.
-- A claimed job moves to a lease set; the claimer removes it when done. A lease that
-- runs out (the claimer died) makes the job due again. Job effects are idempotent
-- scripts, so a job that ran but whose lease was not removed does no harm when re-run.
--
-- KEYS[1]  lc:{jobs}:due    zset job -> due ms          (on a Cluster: lc:{jobs:N}:due,
-- KEYS[2]  lc:{jobs}:lease  zset job -> lease expiry ms    one call per bucket N; keys.Layout)
-- ARGV[1]  max jobs to claim
-- ARGV[2]  lease ms
--
-- Reply: {now ms, next due ms or "" (the earliest job still waiting), job, job, ...}: the
-- claimed jobs (strings "kind|room|id") after the two clock values, so the scheduler can
-- sleep until the next job is due instead of polling.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

for _, job in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)) do
  redis.call('ZREM', KEYS[2], job)
  redis.call('ZADD', KEYS[1], now, job)
end

local jobs = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, job in ipairs(jobs) do
  redis.call('ZREM', KEYS[1], job)
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), job)
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local reply = {tostring(now), nxt[2] or ''}
for _, job in ipairs(jobs) do
  reply[#reply + 1] = job
end
return reply

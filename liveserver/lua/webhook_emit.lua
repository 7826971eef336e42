-- webhook_emit.lua: queue one webhook event for fan-out, at most once per event id.
-- Every producer (the orders relay, room status changes, lottery draws, follow-ups)
-- emits through here, so a producer that retries after a crash (it emitted, then died
-- before acknowledging its own input) never queues the same event twice.
--
-- KEYS[1]  lc:{wh}:ev          stream of events waiting for fan-out (consumer group `fanout`)
-- KEYS[2]  lc:{wh}:seen:<id>   dedupe marker of this event id (expires)
-- ARGV[1]  event id
-- ARGV[2]  event type (order.paid, room.live, ...)
-- ARGV[3]  room ("" when none)
-- ARGV[4]  the event envelope as JSON (exactly the bytes POSTed to receivers)
-- ARGV[5]  seconds the dedupe marker is kept
-- ARGV[6]  event time ms (when it happened; hooks created later do not get it)
--
-- Reply: the stream entry id, or false when this event id was emitted already.
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', tonumber(ARGV[5])) == false then
  return false
end
return redis.call('XADD', KEYS[1], '*', 'id', ARGV[1], 'type', ARGV[2], 'room', ARGV[3], 'body', ARGV[4], 'ts', ARGV[6])

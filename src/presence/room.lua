-- Sets how many open subscriptions one API instance holds for one user in one room (a project or
-- a resource; Herald writes 1 while it holds any, see WATCHING in rooms.ts), and tells the room's
-- subscribers when that makes the user join (their total over every instance goes from 0 to more)
-- or leave (back to 0). The count is absolute, not a delta, so
-- re-announcing an instance's counts, or removing a dead instance's twice, changes nothing more.
--
-- Every key is in the room's slot: KEYS[1] entries (instance/user -> count), KEYS[2] totals (user ->
-- count over every instance), KEYS[3] since (user -> ms they joined), KEYS[4] the room's change
-- counter, which each join and leave increments so a subscriber can tell a missed message.
--
-- ARGV[1] the entries field (instance/user)   ARGV[2] the user   ARGV[3] the new count
-- ARGV[4] "SPUBLISH" on a Redis Cluster (the channel is a shard channel in the room's slot), else "PUBLISH"
-- ARGV[5] the room's channel   ARGV[6] how long the change counter outlives the room's last change (ms)
--
-- Returns the change's number when the user joined or left, else 0.
local old = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local new = tonumber(ARGV[3])
if old == new then
  return 0
end
if new > 0 then
  redis.call('HSET', KEYS[1], ARGV[1], new)
else
  redis.call('HDEL', KEYS[1], ARGV[1])
end
local total = redis.call('HINCRBY', KEYS[2], ARGV[2], new - old)
local before = total - (new - old)
if total <= 0 then
  redis.call('HDEL', KEYS[2], ARGV[2])
end
local change
if total > 0 and before <= 0 then
  change = 'JOINED'
elseif total <= 0 and before > 0 then
  change = 'LEFT'
else
  return 0
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local since = now
if change == 'JOINED' then
  redis.call('HSET', KEYS[3], ARGV[2], now)
else
  since = tonumber(redis.call('HGET', KEYS[3], ARGV[2])) or now
  redis.call('HDEL', KEYS[3], ARGV[2])
end
local version = redis.call('INCR', KEYS[4])
redis.call('PEXPIRE', KEYS[4], ARGV[6])
local publish = ARGV[4] == 'SPUBLISH' and 'SPUBLISH' or 'PUBLISH'
redis.call(publish, ARGV[5], cjson.encode({ version = version, change = change, userId = ARGV[2], since = since, at = now }))
return version

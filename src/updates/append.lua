-- Appends one update to a resource's stream and, when the resource belongs to a project, to the
-- project's stream, as ONE atomic step: take the next seq, store the entry in the history sorted
-- set (scored by seq), trim it to the history limit, refresh the expiry and publish the entry.
--
-- KEYS[1] resource meta hash      KEYS[2] resource history sorted set
-- KEYS[3] project meta hash       KEYS[4] project history sorted set      (only with a project)
-- ARGV[1] history limit           ARGV[2] expiry in seconds
-- ARGV[3] epoch for a new resource history
-- ARGV[4] JSON members naming the resource, e.g. "kind":"file","id":"abc"
-- ARGV[5] the update as a JSON object
-- ARGV[6] "1" when the update is terminal (COMPLETED, FAILED, CANCELLED)
-- ARGV[7] resource channel        ARGV[8] project channel     ARGV[9] epoch for a new project history
--
-- Returns the stored resource entry (a JSON string), or false when the resource already ended.
local limit = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])

local function append(meta, history, channel, new_epoch, body)
  local seq = redis.call('HINCRBY', meta, 'seq', 1)
  redis.call('HSETNX', meta, 'epoch', new_epoch)
  local epoch = redis.call('HGET', meta, 'epoch')
  local entry = '{"seq":' .. seq .. ',"epoch":"' .. epoch .. '",' .. body .. '}'
  redis.call('ZADD', history, seq, entry)
  redis.call('ZREMRANGEBYRANK', history, 0, -(limit + 1))
  redis.call('EXPIRE', meta, ttl)
  redis.call('EXPIRE', history, ttl)
  redis.call('PUBLISH', channel, entry)
  return entry
end

if redis.call('HEXISTS', KEYS[1], 'final') == 1 then
  return false
end
local entry = append(KEYS[1], KEYS[2], ARGV[7], ARGV[3], ARGV[4] .. ',"update":' .. ARGV[5])
if ARGV[6] == '1' then
  redis.call('HSET', KEYS[1], 'final', '1')
end
if #KEYS == 4 then
  append(KEYS[3], KEYS[4], ARGV[8], ARGV[9], '"item":' .. entry)
end
return entry

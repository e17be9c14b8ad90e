-- Every write to the notification store, as ONE atomic step each. All keys share one hash tag.
--
-- ARGV[1] operation: send | read | read_all | unread
-- ARGV[2] parameters as JSON: epoch (for a new history), base (key prefix of sources), publish ("SPUBLISH" on a
--         Redis Cluster, where the channels share the keys' hash tag; PUBLISH otherwise), and per operation below
-- ARGV[3] send only: the notification's JSON members, starting with "level"
--
-- KEYS[1] meta hash: n (global number), epoch, seq:<source>, trimmed:<source> (highest n removed)
-- KEYS[2] timeline sorted set: "<n>|<source>" scored by the time (ms) the entry expires
--
-- send:     KEYS[3] the target's source.  params: source, channel, limit, ttlMs
--           Numbers, stores, trims and publishes one notification; returns the entry.
-- read, read_all, unread:
--           KEYS[3] the user's watermark, KEYS[4] their read set, KEYS[5] their receipts source,
--           KEYS[6..] their target sources.  params: targets (source names, in KEYS order),
--           receipts, channel, limit, ttlMs (for receipts), readTtl (seconds), ids (read only)
--   read:     marks the notifications named by ids ([epoch, n] pairs) that are addressed to the user.
--   read_all: marks everything addressed to the user up to the newest one.
--             Both return { newly marked, unread after }, and when something changed append a
--             READ (one per notification) or READ_ALL receipt to the user's receipts.
--   unread:   returns { unread, INFO, SUCCESS, WARNING, ERROR }.
--
-- Every call first removes entries whose age passed retention (a bounded batch), from any source:
-- those keys are named from the timeline, under the same hash tag as the keys declared above.
local meta, timeline = KEYS[1], KEYS[2]
local op = ARGV[1]
local p = cjson.decode(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

redis.call('HSETNX', meta, 'epoch', p.epoch)
local epoch = redis.call('HGET', meta, 'epoch')

local function note_trimmed(source, n)
  local field = 'trimmed:' .. source
  if n > tonumber(redis.call('HGET', meta, field) or '0') then
    redis.call('HSET', meta, field, n)
  end
end

local function expire_old()
  local due = redis.call('ZRANGEBYSCORE', timeline, '-inf', now, 'LIMIT', 0, 500)
  for _, member in ipairs(due) do
    local sep = string.find(member, '|', 1, true)
    local n = tonumber(string.sub(member, 1, sep - 1))
    local source = string.sub(member, sep + 1)
    redis.call('ZREMRANGEBYSCORE', p.base .. 'src:' .. source, n, n)
    note_trimmed(source, n)
  end
  if #due > 0 then
    redis.call('ZREM', timeline, unpack(due))
  end
end

-- Takes the next n and the source's next seq, stores the entry, keeps the source to `limit`
-- entries, schedules its expiry, publishes it. `notification` is a JSON object, or nil for a new
-- one made of ARGV[3].
local function append(key, source, channel, limit, ttl_ms, event, unread, notification)
  local n = redis.call('HINCRBY', meta, 'n', 1)
  local seq = redis.call('HINCRBY', meta, 'seq:' .. source, 1)
  if notification == nil then
    notification = '{"id":"' .. epoch .. '-' .. n .. '","n":' .. n .. ',' .. ARGV[3] .. '}'
  end
  local entry = '{"n":' .. n .. ',"seq":' .. seq .. ',"epoch":"' .. epoch .. '","source":"' .. source ..
    '","event":"' .. event .. '","unreadCount":' .. unread .. ',"notification":' .. notification .. '}'
  redis.call('ZADD', key, n, entry)
  redis.call('ZADD', timeline, now + ttl_ms, n .. '|' .. source)
  local excess = redis.call('ZCARD', key) - limit
  if excess > 0 then
    local old = redis.call('ZRANGE', key, 0, excess - 1, 'WITHSCORES')
    for i = 2, #old, 2 do
      redis.call('ZREM', timeline, old[i] .. '|' .. source)
      note_trimmed(source, tonumber(old[i]))
    end
    redis.call('ZREMRANGEBYRANK', key, 0, excess - 1)
  end
  redis.call(p.publish == 'SPUBLISH' and 'SPUBLISH' or 'PUBLISH', channel, entry)
  return entry
end

expire_old()

if op == 'send' then
  return append(KEYS[3], p.source, p.channel, p.limit, p.ttlMs, 'CREATED', 'null', nil)
end

local watermark_key, read_key, receipts_key = KEYS[3], KEYS[4], KEYS[5]
local watermark = tonumber(redis.call('GET', watermark_key) or '0')

-- Unread: addressed to the user, above the watermark, and not in the read set.
local function unread_counts(upto)
  local counts = { INFO = 0, SUCCESS = 0, WARNING = 0, ERROR = 0 }
  local total = 0
  for i, source in ipairs(p.targets) do
    local entries = redis.call('ZRANGEBYSCORE', KEYS[5 + i], '(' .. upto, '+inf', 'WITHSCORES')
    for j = 1, #entries, 2 do
      if not redis.call('ZSCORE', read_key, entries[j + 1] .. '|' .. source) then
        local level = string.match(entries[j], '"level":"(%u+)"')
        counts[level] = counts[level] + 1
        total = total + 1
      end
    end
  end
  return total, counts
end

local function receipt(event, unread, entry)
  local notification = string.match(entry, '"notification":(.*)}$')
  append(receipts_key, p.receipts, p.channel, p.limit, p.ttlMs, event, unread, notification)
end

if op == 'unread' then
  local total, counts = unread_counts(watermark)
  return { total, counts.INFO, counts.SUCCESS, counts.WARNING, counts.ERROR }
end

if op == 'read' then
  local marked = {}
  for _, id in ipairs(p.ids) do
    local n = id[2]
    if id[1] == epoch and n > watermark then
      for i, source in ipairs(p.targets) do
        local found = redis.call('ZRANGEBYSCORE', KEYS[5 + i], n, n)
        if found[1] then
          if redis.call('ZADD', read_key, n, n .. '|' .. source) == 1 then
            table.insert(marked, found[1])
          end
          break
        end
      end
    end
  end
  local unread = unread_counts(watermark)
  if #marked > 0 then
    redis.call('EXPIRE', read_key, p.readTtl)
    for _, entry in ipairs(marked) do
      receipt('READ', unread, entry)
    end
  end
  return { #marked, unread }
end

if op == 'read_all' then
  local newest, newest_n = nil, watermark
  for i = 1, #p.targets do
    local top = redis.call('ZREVRANGE', KEYS[5 + i], 0, 0, 'WITHSCORES')
    if top[1] and tonumber(top[2]) > newest_n then
      newest, newest_n = top[1], tonumber(top[2])
    end
  end
  local before = unread_counts(watermark)
  if newest == nil then
    return { 0, before }
  end
  redis.call('SET', watermark_key, newest_n, 'EX', p.readTtl)
  redis.call('ZREMRANGEBYSCORE', read_key, '-inf', newest_n)
  local after = unread_counts(newest_n)
  if before > 0 then
    receipt('READ_ALL', after, newest)
  end
  return { before, after }
end

return redis.error_reply('unknown operation ' .. tostring(op))

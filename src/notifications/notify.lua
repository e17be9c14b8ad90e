-- Every step of the notification store, as ONE atomic step each. Every key of a call shares the
-- hash tag of one source (a target, or a user's read receipts and read state), so on a Redis
-- Cluster each call runs on the shard of that one source.
--
-- ARGV[1] operation: send | read | unread | mark | mark_all
-- ARGV[2] parameters as JSON: epoch (for a history that starts with this append), ttlMs (retention
--         by age of the source's entries), and per operation below
-- ARGV[3] send only: the notification's JSON members, starting with "level"
--
-- KEYS[1] the source's meta hash: seq, epoch, t (last stored time), c:<LEVEL> (CREATED per level, ever)
-- KEYS[2] the source's entries: a sorted set scored by seq; each entry is JSON starting with {"t":<ms>
--
-- send:   params: source, channel, publish ("SPUBLISH" on a Redis Cluster, PUBLISH otherwise), limit,
--         sendId (optional: a producer's id for this notification, e.g. from an HTTP Idempotency-Key).
--         Numbers (the source's next seq), stores, trims and publishes one notification; returns the entry.
--         KEYS[3] the source's send ids (sorted set, sendId scored by seq): a sendId already there
--         returns the entry it stored, sending nothing; one whose entry retention dropped is an error.
-- read:   params: min, max (seq bounds as ZRANGEBYSCORE takes them), limit, rev (newest first).
--         Returns { epoch ("" before the first append), last seq, oldest kept entry or "", newest kept
--         entry or "", entries... }. Writes nothing but retention, so reading a target creates no key.
-- unread, mark, mark_all: KEYS are the user's receipts source, then KEYS[3] their watermarks,
--         KEYS[4] their read set, KEYS[5] their preferences (levels, kinds: what they muted,
--         comma-separated) and KEYS[6] what they removed (notification id -> DELETED or ARCHIVED).
--         params: stats (per target source, read just before: s source,
--         e epoch, top seq of the newest kept, lc its counts by level, fs the seq before the oldest
--         kept, fc the counts by level at fs), source/channel/publish/limit (of the receipts),
--         readTtl (seconds), ids (mark: { id, s, e, seq, level, notification } of kept notifications),
--         remove (mark, optional: DELETED or ARCHIVED), newest (mark_all: the newest notification
--         covered, as JSON)
--   unread:   returns { unread, INFO, SUCCESS, WARNING, ERROR }, in O(targets + read set), leaving
--             out muted levels and targets of muted kinds (removed ones are read: see mark).
--   mark:     marks the ids; mark_all moves every target's watermark to its newest kept entry.
--             Both return { newly marked, unread after }, and when something changed append a
--             READ (one per notification) or READ_ALL receipt to the user's receipts. With
--             `remove`, mark also records each id as removed (a deleted one stays deleted) and
--             returns { newly removed, unread after }, appending a DELETED or ARCHIVED receipt each.
--
-- Every call first drops the source's entries whose age passed retention (a bounded batch): within
-- a source, stored times never go down, so they are its oldest.
local meta, entries_key = KEYS[1], KEYS[2]
local op = ARGV[1]
local p = cjson.decode(ARGV[2])
local LEVELS = { 'INFO', 'SUCCESS', 'WARNING', 'ERROR' }
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

for _ = 1, 500 do
  local oldest = redis.call('ZRANGE', entries_key, 0, 0)[1]
  if not oldest or tonumber(string.match(oldest, '^{"t":(%d+)')) + p.ttlMs > now then
    break
  end
  redis.call('ZREMRANGEBYRANK', entries_key, 0, 0)
end

-- Takes the source's next seq, stores the entry, keeps the source to `limit` entries, publishes it.
-- `notification` is a JSON object, or nil for a new one made of ARGV[3].
local function append(event, unread, notification)
  redis.call('HSETNX', meta, 'epoch', p.epoch)
  local epoch = redis.call('HGET', meta, 'epoch')
  local seq = redis.call('HINCRBY', meta, 'seq', 1)
  local t = math.max(now, tonumber(redis.call('HGET', meta, 't') or '0'))
  redis.call('HSET', meta, 't', t)
  local counts = 'null'
  if notification == nil then
    notification = '{"id":"' .. epoch .. '-' .. seq .. '-' .. p.source .. '",' .. ARGV[3] .. '}'
    redis.call('HINCRBY', meta, 'c:' .. string.match(ARGV[3], '^"level":"(%u+)"'), 1)
    local c = redis.call('HMGET', meta, 'c:INFO', 'c:SUCCESS', 'c:WARNING', 'c:ERROR')
    counts = '[' .. (c[1] or 0) .. ',' .. (c[2] or 0) .. ',' .. (c[3] or 0) .. ',' .. (c[4] or 0) .. ']'
  end
  local entry = '{"t":' .. t .. ',"seq":' .. seq .. ',"epoch":"' .. epoch .. '","source":"' .. p.source ..
    '","event":"' .. event .. '","unreadCount":' .. unread .. ',"c":' .. counts .. ',"notification":' .. notification .. '}'
  redis.call('ZADD', entries_key, seq, entry)
  local excess = redis.call('ZCARD', entries_key) - p.limit
  if excess > 0 then
    redis.call('ZREMRANGEBYRANK', entries_key, 0, excess - 1)
  end
  redis.call('PEXPIRE', entries_key, p.ttlMs)
  redis.call(p.publish == 'SPUBLISH' and 'SPUBLISH' or 'PUBLISH', p.channel, entry)
  return entry
end

if op == 'send' then
  local ids_key = KEYS[3]
  if p.sendId then
    local sent = redis.call('ZSCORE', ids_key, p.sendId)
    if sent then
      local kept = redis.call('ZRANGEBYSCORE', entries_key, sent, sent)[1]
      local epoch = redis.call('HGET', meta, 'epoch')
      if kept and epoch and string.find(kept, '"epoch":"' .. epoch .. '"', 1, true) then
        return kept
      end
      return redis.error_reply('ALREADY_SENT this notification was sent already and is no longer kept')
    end
  end
  local entry = append('CREATED', 'null', nil)
  if p.sendId then
    redis.call('ZADD', ids_key, tonumber(string.match(entry, '"seq":(%d+)')), p.sendId)
    local oldest = redis.call('ZRANGE', entries_key, 0, 0, 'WITHSCORES')[2]
    if oldest then
      redis.call('ZREMRANGEBYSCORE', ids_key, '-inf', '(' .. oldest)
    end
    redis.call('PEXPIRE', ids_key, p.ttlMs)
  end
  return entry
end

if op == 'read' then
  local reply = {
    redis.call('HGET', meta, 'epoch') or '',
    tonumber(redis.call('HGET', meta, 'seq') or '0'),
    redis.call('ZRANGE', entries_key, 0, 0)[1] or '',
    redis.call('ZRANGE', entries_key, -1, -1)[1] or '',
  }
  if p.limit ~= 0 then
    local found
    if p.rev then
      found = redis.call('ZREVRANGEBYSCORE', entries_key, p.max, p.min, 'LIMIT', 0, p.limit)
    else
      found = redis.call('ZRANGEBYSCORE', entries_key, p.min, p.max, 'LIMIT', 0, p.limit)
    end
    for _, entry in ipairs(found) do
      table.insert(reply, entry)
    end
  end
  return reply
end

local watermarks, read_key, preferences_key, removed_key = KEYS[3], KEYS[4], KEYS[5], KEYS[6]

-- The set of the comma-separated names in one field of the user's preferences.
local function muted(field)
  local set = {}
  for name in string.gmatch(redis.call('HGET', preferences_key, field) or '', '[^,]+') do
    set[name] = true
  end
  return set
end

-- Per target: what is kept above its watermark (or above what retention dropped), by level,
-- less what the user marked one by one.
local function unread_counts()
  local marked = {}
  for _, member in ipairs(redis.call('SMEMBERS', read_key)) do
    local s, e, seq, level = string.match(member, '^(.*)|([^|]*)|(%d+)|(%u+)$')
    marked[s] = marked[s] or {}
    table.insert(marked[s], { e = e, seq = tonumber(seq), level = level })
  end
  local counts = { 0, 0, 0, 0 }
  local muted_kinds = muted('kinds')
  for _, st in ipairs(p.stats) do
    if st.top > 0 and not muted_kinds[string.upper(string.match(st.s, '^%a+'))] then
      local base, base_counts = st.fs, st.fc
      local w = redis.call('HGET', watermarks, st.s)
      if w then
        w = cjson.decode(w)
        if w[1] == st.e and w[2] >= base then
          base, base_counts = w[2], w[3]
        end
      end
      if st.top > base then
        for i = 1, 4 do
          counts[i] = counts[i] + st.lc[i] - base_counts[i]
        end
        for _, m in ipairs(marked[st.s] or {}) do
          if m.e == st.e and m.seq > base and m.seq <= st.top then
            for i, level in ipairs(LEVELS) do
              if level == m.level then
                counts[i] = counts[i] - 1
              end
            end
          end
        end
      end
    end
  end
  local muted_levels = muted('levels')
  for i, level in ipairs(LEVELS) do
    if muted_levels[level] then
      counts[i] = 0
    end
  end
  return counts[1] + counts[2] + counts[3] + counts[4], counts
end

if op == 'unread' then
  local total, counts = unread_counts()
  return { total, counts[1], counts[2], counts[3], counts[4] }
end

-- Forgets removed notifications that retention dropped (or whose history was lost), so the
-- hash holds no more than what the user's targets keep.
local function prune_removed()
  local kept = {}
  for _, st in ipairs(p.stats) do
    kept[st.s] = st
  end
  for _, id in ipairs(redis.call('HKEYS', removed_key)) do
    local e, seq, s = string.match(id, '^([^-]+)-(%d+)-(.+)$')
    local st = kept[s]
    if st and (st.e ~= e or tonumber(seq) <= st.fs) then
      redis.call('HDEL', removed_key, id)
    end
  end
end

if op == 'mark' then
  local changed = {}
  for _, id in ipairs(p.ids) do
    local w = redis.call('HGET', watermarks, id.s)
    w = w and cjson.decode(w)
    local below = w and w[1] == id.e and id.seq <= w[2]
    local newly_read = not below and redis.call('SADD', read_key, id.s .. '|' .. id.e .. '|' .. id.seq .. '|' .. id.level) == 1
    if p.remove then
      local was = redis.call('HGET', removed_key, id.id)
      if was ~= 'DELETED' and was ~= p.remove then
        redis.call('HSET', removed_key, id.id, p.remove)
        table.insert(changed, id.notification)
      end
    elseif newly_read then
      table.insert(changed, id.notification)
    end
  end
  local unread = unread_counts()
  if #changed > 0 then
    redis.call('EXPIRE', read_key, p.readTtl)
    if p.remove then
      prune_removed()
      redis.call('EXPIRE', removed_key, p.readTtl)
    end
    for _, notification in ipairs(changed) do
      append(p.remove or 'READ', unread, notification)
    end
  end
  return { #changed, unread }
end

if op == 'mark_all' then
  local before = unread_counts()
  for _, st in ipairs(p.stats) do
    if st.top > 0 then
      redis.call('HSET', watermarks, st.s, cjson.encode({ st.e, st.top, st.lc }))
    end
  end
  local tops = {}
  for _, st in ipairs(p.stats) do
    tops[st.s] = st.top
  end
  for _, member in ipairs(redis.call('SMEMBERS', read_key)) do
    local s, seq = string.match(member, '^(.*)|[^|]*|(%d+)|%u+$')
    if tonumber(seq) <= (tops[s] or 0) then
      redis.call('SREM', read_key, member)
    end
  end
  redis.call('EXPIRE', watermarks, p.readTtl)
  local after = unread_counts()
  if before > 0 then
    append('READ_ALL', after, p.newest)
  end
  return { before, after }
end

return redis.error_reply('unknown operation ' .. tostring(op))

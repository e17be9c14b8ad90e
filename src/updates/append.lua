-- Appends updates to resources' streams and, when a resource belongs to a project, to the
-- project's stream. Each update is ONE atomic step: take the next seq, store the entry in the
-- history sorted set (scored by seq), publish the entry. One call may carry several updates, for
-- one stream or many (in Cluster mode, all in one hash slot): they are appended in the order given,
-- and the call costs Redis one script run instead of one per update.
--
-- A retried call (the reply was lost, so the client sent it again) is recognised by each update's
-- append id and answered with the entry stored the first time: nothing is stored or published twice.
--
-- Cheap per update: the history (and the append ids) are trimmed back to the limit only once they
-- exceed it by a slack of limit / 8 (at least 1), so they hold limit to limit + slack - 1 entries;
-- the keys' expiry is refreshed only when it would otherwise fall short of `ttl` after this update,
-- and then set to ttl + ttl / 16, so a stream is kept at least `ttl` after its last update.
--
-- A body (optional, per update): a string the resource's entries build up piece by piece (an
-- answer's text), so that no entry carries all of it and history grows with the text, not its
-- square. The piece is APPENDed to the body key in the same step, and the entry records
-- "body":[start,end], byte offsets into that key: the body so far is GETRANGE start..end-1. A new
-- body (a job attempt starting over) starts where the old one ends, so earlier ranges stay valid.
-- The body key is never trimmed; it expires with the stream.
--
-- ARGV[1] history limit   ARGV[2] expiry in seconds
-- ARGV[3] "SPUBLISH" on a Redis Cluster (channels are shard channels in the keys' slot), else "PUBLISH"
-- then 10 arguments per update:
--   epoch for a new resource history; JSON members naming the resource, e.g. "kind":"file","id":"abc";
--   the update as a JSON object; "1" when it is terminal (COMPLETED, FAILED, CANCELLED);
--   resource channel; append id (unique per logical update, the same on every retry of it; "" for none);
--   project channel ("" for none); epoch for a new project history ("" for none);
--   body piece ("" for none); body mode: "" without a body, "0" to append to it, "1" to start a new one.
--   The last update may leave out trailing arguments that would be "".
-- KEYS, per update in order: resource meta hash, resource history sorted set, resource append ids
--   sorted set (append id -> -seq, trimmed with the history); then, only with a project channel, the
--   project meta hash and history sorted set; then, only with a body mode, the body string.
--   A Redis Cluster routes a call by its declared keys, which must share a slot; there (with
--   SPUBLISH) a call carrying updates of several slots that one node serves declares only the keys
--   of its first update(s) and passes the others, in the same order, after the last update's
--   arguments (each update then has all 10). Redis lets a script without flags use keys of other
--   slots its node serves; one it does not serve fails the script at that update, and the caller
--   sends the rest again.
--
-- Returns, for a call with one update, the stored resource entry (a JSON string), or false when the
-- resource already ended; for several, the list of those, in the order of the updates.
local limit = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local publish_command = ARGV[3] == 'SPUBLISH' and 'SPUBLISH' or 'PUBLISH'
local slack = math.max(1, math.floor(limit / 8))
-- Before Redis 7, a script must ask for its effects to be replicated to call TIME and then write.
redis.replicate_commands()
local now = tonumber(redis.call('TIME')[1])
local keep_until = now + ttl

-- The updates' keys, in order (see KEYS above), and where their arguments end: on a Cluster
-- (SPUBLISH), undeclared keys may follow them. While updates remain, what is left of ARGV exceeds
-- the undeclared keys counted so far (an update has 10 arguments and at least 3 keys), so the first
-- position where the two are equal ends the updates.
local keys, last_arg = KEYS, #ARGV
if publish_command == 'SPUBLISH' then
  local a, needed = 4, 0
  while a <= #ARGV and #ARGV - a + 1 ~= math.max(0, needed - #KEYS) do
    needed = needed + 3 + ((ARGV[a + 6] or '') ~= '' and 2 or 0) + ((ARGV[a + 9] or '') ~= '' and 1 or 0)
    a = a + 10
  end
  if needed > #KEYS then
    last_arg = a - 1
    keys = {}
    for i = 1, #KEYS do
      keys[i] = KEYS[i]
    end
    for i = a, #ARGV do
      keys[#keys + 1] = ARGV[i]
    end
  end
end

local function publish(channel, entry)
  redis.call(publish_command, channel, entry)
end

-- True when a stream's keys, whose meta hash records `expires`, would expire before `keep_until`.
local function expiry_due(expires)
  return not expires or tonumber(expires) < keep_until
end

-- Sets the expiry of a stream's keys and records its deadline in the meta hash; `ids` records that
-- the append ids key (created by the first update carrying an id) has one too.
local function expire(meta, keys, ids)
  local extended = ttl + math.ceil(ttl / 16)
  for _, key in ipairs(keys) do
    redis.call('EXPIRE', key, extended)
  end
  redis.call('HSET', meta, 'expires', now + extended)
  if ids then
    redis.call('HSET', meta, 'ids', '1')
  end
end

-- Stores the entry of a stream's next seq (`seq`, a string) and, every `slack` seqs past the limit,
-- trims the history back to `limit` entries. `epoch` is the stream's (false when it has no history
-- yet: then it starts one with `new_epoch`). Returns the entry and whether the history was trimmed.
local function store(meta, history, seq, epoch, new_epoch, members)
  if epoch then
    redis.call('HSET', meta, 'seq', seq)
  else
    epoch = new_epoch
    redis.call('HSET', meta, 'seq', seq, 'epoch', epoch)
  end
  local entry = '{"seq":' .. seq .. ',"epoch":"' .. epoch .. '",' .. members .. '}'
  redis.call('ZADD', history, seq, entry)
  local n = tonumber(seq)
  local trim = n > limit and n % slack == 0
  if trim then
    redis.call('ZREMRANGEBYRANK', history, 0, -(limit + 1))
  end
  return entry, trim
end

-- The seq after `last` (a stream's HMGET of seq: false before its first update), as a string.
local function next_seq(last)
  return tostring((tonumber(last) or 0) + 1)
end

-- Appends `piece` to the body key (a new body starts at its current end when `mode` is "1") and
-- returns the entry member recording the body so far. Its expiry follows the stream's.
local function append_body(meta, body, piece, mode)
  local start
  if mode == '1' then
    start = redis.call('STRLEN', body)
    redis.call('HSET', meta, 'body_start', start)
  else
    start = tonumber(redis.call('HGET', meta, 'body_start') or '0')
  end
  local finish = redis.call('APPEND', body, piece)
  redis.call('EXPIRE', body, ttl + math.ceil(ttl / 16))
  return ',"body":[' .. start .. ',' .. finish .. ']'
end

-- Appends one update: its KEYS from `k` (`project`, `body`: the indexes of its optional keys), its
-- arguments from `a`. Returns the entry (false when the resource already ended).
local function append(k, a, project, body)
  local meta, history, ids = keys[k], keys[k + 1], keys[k + 2]
  local append_id = ARGV[a + 5]
  local state = redis.call('HMGET', meta, 'seq', 'epoch', 'expires', 'final', 'ids')
  local seq = next_seq(state[1])
  -- The id is recorded with the seq it is about to get, scored -seq; when it is there already,
  -- this is a retry.
  if append_id ~= '' and redis.call('ZADD', ids, 'NX', '-' .. seq, append_id) == 0 then
    local seen = math.abs(tonumber(redis.call('ZSCORE', ids, append_id)))
    return redis.call('ZRANGEBYSCORE', history, seen, seen)[1]
  end
  if state[4] then
    if append_id ~= '' then
      redis.call('ZREM', ids, append_id)
    end
    return false
  end
  local members = ARGV[a + 1] .. ',"update":' .. ARGV[a + 2]
  if body then
    members = members .. append_body(meta, keys[body], ARGV[a + 8] or '', ARGV[a + 9])
  end
  local entry, trimmed = store(meta, history, seq, state[2], ARGV[a], members)
  if ARGV[a + 3] == '1' then
    redis.call('HSET', meta, 'final', '1')
  end
  -- Ids are kept as long as their entries: the history holds seqs above seq - limit.
  if trimmed and append_id ~= '' then
    redis.call('ZREMRANGEBYSCORE', ids, limit - tonumber(seq), '(0')
  end
  if expiry_due(state[3]) or (append_id ~= '' and not state[5]) then
    expire(meta, { meta, history, ids }, append_id ~= '')
  end
  publish(ARGV[a + 4], entry)
  if project then
    local project_meta, project_history = keys[project], keys[project + 1]
    local stream = redis.call('HMGET', project_meta, 'seq', 'epoch', 'expires')
    local item = store(project_meta, project_history, next_seq(stream[1]), stream[2], ARGV[a + 7], '"item":' .. entry)
    if expiry_due(stream[3]) then
      expire(project_meta, { project_meta, project_history }, false)
    end
    publish(ARGV[a + 6], item)
  end
  return entry
end

local entries = {}
local k = 1
for a = 4, last_arg, 10 do
  local next_key = k + 3
  local project, body
  if (ARGV[a + 6] or '') ~= '' then
    project, next_key = next_key, next_key + 2
  end
  if (ARGV[a + 9] or '') ~= '' then
    body, next_key = next_key, next_key + 1
  end
  entries[#entries + 1] = append(k, a, project, body)
  k = next_key
end
if #entries == 1 then
  return entries[1]
end
return entries

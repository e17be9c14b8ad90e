-- Appends one update to a resource's stream and, when the resource belongs to a project, to the
-- project's stream, as ONE atomic step: take the next seq, store the entry in the history sorted
-- set (scored by seq), trim it to the history limit, refresh the expiry and publish the entry.
--
-- A retried call (the reply was lost, so the client sent it again) is recognised by its append
-- id and answered with the entry stored the first time: nothing is stored or published twice.
--
-- KEYS[1] resource meta hash      KEYS[2] resource history sorted set
-- KEYS[3] resource append ids sorted set (append id -> seq, trimmed with the history)
-- KEYS[4] project meta hash       KEYS[5] project history sorted set      (only with a project)
-- ARGV[1] history limit           ARGV[2] expiry in seconds
-- ARGV[3] epoch for a new resource history
-- ARGV[4] JSON members naming the resource, e.g. "kind":"file","id":"abc"
-- ARGV[5] the update as a JSON object
-- ARGV[6] "1" when the update is terminal (COMPLETED, FAILED, CANCELLED)
-- ARGV[7] resource channel
-- ARGV[8] append id: unique per logical update, the same on every retry of it ("" for none)
-- ARGV[9] project channel         ARGV[10] epoch for a new project history ("" and "" without a project)
--
-- Optional body (a string the resource's entries build up piece by piece, e.g. an answer's text,
-- so no entry has to carry all of it): the body string key is the LAST key, making 4 keys without
-- a project or 6 with one, and
-- ARGV[11] the piece to append to the body ("" for none)
-- ARGV[12] "1" to start a new body here (a job attempt starting over), else "0"
-- The body is append-only: a new body starts where the old one ends. The entry then records
-- "body":[start,end], the byte offsets of its body so far (from the start of the current body to
-- the end of its own piece); the body key is never trimmed, and its expiry is refreshed by each
-- append to it.
--
-- Returns the stored resource entry (a JSON string), or false when the resource already ended.
local limit = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local append_id = ARGV[8]

if append_id ~= '' then
  local seen = redis.call('ZSCORE', KEYS[3], append_id)
  if seen then
    return redis.call('ZRANGEBYSCORE', KEYS[2], seen, seen)[1]
  end
end

-- Takes a stream's next seq, stores the entry, trims the history to `limit` entries, refreshes the
-- expiry and publishes. `epoch` is the stream's (false when it has no history yet: then it starts
-- one with `new_epoch`). Returns the entry and its seq.
local function append(meta, history, channel, epoch, new_epoch, body)
  local seq = redis.call('HINCRBY', meta, 'seq', 1)
  if not epoch then
    epoch = new_epoch
    redis.call('HSET', meta, 'epoch', epoch)
  end
  local entry = '{"seq":' .. seq .. ',"epoch":"' .. epoch .. '",' .. body .. '}'
  redis.call('ZADD', history, seq, entry)
  if seq > limit then
    redis.call('ZREMRANGEBYRANK', history, 0, -(limit + 1))
  end
  redis.call('EXPIRE', meta, ttl)
  redis.call('EXPIRE', history, ttl)
  redis.call('PUBLISH', channel, entry)
  return entry, seq
end

local state = redis.call('HMGET', KEYS[1], 'final', 'epoch')
if state[1] then
  return false
end
local members = ARGV[4] .. ',"update":' .. ARGV[5]
-- The optional body (see the header): self-contained, it only adds a member to the entry.
if #KEYS == 4 or #KEYS == 6 then
  local body_key = KEYS[#KEYS]
  local start
  if ARGV[12] == '1' then
    start = redis.call('STRLEN', body_key)
    redis.call('HSET', KEYS[1], 'body_start', start)
  else
    start = tonumber(redis.call('HGET', KEYS[1], 'body_start') or '0')
  end
  local finish = redis.call('APPEND', body_key, ARGV[11])
  redis.call('EXPIRE', body_key, ttl)
  members = members .. ',"body":[' .. start .. ',' .. finish .. ']'
end
local entry, seq = append(KEYS[1], KEYS[2], ARGV[7], state[2], ARGV[3], members)
if ARGV[6] == '1' then
  redis.call('HSET', KEYS[1], 'final', '1')
end
if append_id ~= '' then
  -- Ids are kept as long as their entries: the history holds seqs above seq - limit.
  redis.call('ZADD', KEYS[3], seq, append_id)
  if seq > limit then
    redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', seq - limit)
  end
  redis.call('EXPIRE', KEYS[3], ttl)
end
if #KEYS >= 5 then
  append(KEYS[4], KEYS[5], ARGV[9], redis.call('HGET', KEYS[4], 'epoch'), ARGV[10], '"item":' .. entry)
end
return entry

-- Reads one stream's history as ONE atomic step, so the last seq matches the entries read. A
-- script rather than a MULTI: one command to queue and answer, which matters when thousands of
-- subscriptions open at once and their reads wait in line.
--
-- KEYS[1] meta hash               KEYS[2] history sorted set (scored by seq)
-- KEYS[3] optional: the resource's body string (see append.lua)
-- ARGV[1] "after" or "last"
-- ARGV[2] after: the seq to read after; last: how many of the newest entries to read (at least 1)
-- ARGV[3] after: the most entries to read, -1 for all
--
-- Returns { { seq, epoch, final } (HMGET of the meta hash), the oldest entry's member and score
-- (empty when none is kept), the entries read (JSON strings, oldest first) }, and with a body key
-- two more: the body's first bytes, up to the end of the last entry read that has a body range
-- ("" when none has), and the body's whole length in bytes.
local meta = redis.call('HMGET', KEYS[1], 'seq', 'epoch', 'final')
local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
local entries
if ARGV[1] == 'after' then
  entries = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[2], '+inf', 'LIMIT', 0, ARGV[3])
else
  entries = redis.call('ZRANGE', KEYS[2], -tonumber(ARGV[2]), -1)
end
if #KEYS == 2 then
  return { meta, first, entries }
end
-- A resource entry with a body range ends with it (append.lua adds it last), so only the tail of
-- each entry is looked at, newest first: body ends only grow with seq. No body, no looking.
local length = redis.call('STRLEN', KEYS[3])
local prefix = ''
if length > 0 then
  for i = #entries, 1, -1 do
    local finish = string.match(string.sub(entries[i], -48), '"body":%[%d+,(%d+)%]}$')
    if finish then
      if tonumber(finish) > 0 then
        prefix = redis.call('GETRANGE', KEYS[3], 0, tonumber(finish) - 1)
      end
      break
    end
  end
end
return { meta, first, entries, prefix, length }

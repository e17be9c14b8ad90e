-- Counts one more connection for a user on this instance, unless that would take the user over
-- the cap summed over every live instance: the check and the write are one atomic step, so two
-- instances admitting the same user at once cannot both squeeze past the cap.
--
-- Instance keys are read by name from the index; they all carry the {presence} hash tag, so in a
-- Redis Cluster they live in the slot of KEYS[1]. An expired instance key (a crashed instance)
-- reads as nothing, like a gone instance.
--
-- KEYS[1] index set of instance ids        KEYS[2] this instance's hash (user id -> count)
-- ARGV[1] this instance's id               ARGV[2] user id
-- ARGV[3] the user's count on this instance including the new connection
-- ARGV[4] the cap                          ARGV[5] entry lifetime in milliseconds
-- ARGV[6] the key of an instance hash without its id
--
-- Returns 1 when admitted (and written), 0 when over the cap (nothing written).
local total = tonumber(ARGV[3])
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if id ~= ARGV[1] then
    total = total + (tonumber(redis.call('HGET', ARGV[6] .. id, ARGV[2])) or 0)
  end
end
if total > tonumber(ARGV[4]) then
  return 0
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('SADD', KEYS[1], ARGV[1])
return 1

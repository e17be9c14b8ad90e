-- Counts one more connection for a user on this instance, unless that would take the user over
-- the cap summed over every instance: the check and the write are one atomic step, so two
-- instances admitting the same user at once cannot both squeeze past the cap.
--
-- The user's hash holds one count per instance and lives in the user's own slot, so admitting
-- touches one small key and connection churn spreads over a Cluster's shards. A crashed
-- instance's counts are removed by the first live instance that finds it gone (registry.ts).
--
-- KEYS[1] the user's hash (instance id -> count)
-- ARGV[1] this instance's id   ARGV[2] the user's count on this instance including the new connection
-- ARGV[3] the cap
--
-- Returns 1 when admitted (and written), 0 when over the cap (nothing written).
local total = tonumber(ARGV[2])
local counts = redis.call('HGETALL', KEYS[1])
for i = 1, #counts, 2 do
  if counts[i] ~= ARGV[1] then
    total = total + tonumber(counts[i + 1])
  end
end
if total > tonumber(ARGV[3]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1

import { expect, it } from 'vitest';
import { DeliveryLog, judge } from './faults/fault.js';
import { faultScenarios } from './faults/index.js';

// Each scenario starts its own processes under its own key prefix (the Redis restart, the
// Sentinel failover and the Cluster rows their own redis-servers too, nine for the durable
// Cluster row), so they run side by side. A scenario throws when
// its own expectations fail. The longest, the durable Cluster row and the Sentinel failover,
// follow a job for up to 90 s after starting nine (six) Redis servers and their processes, all
// slower under the whole suite's load.
const SCENARIO_TIMEOUT_MS = 150_000;

for (const scenario of faultScenarios) {
  it.concurrent(
    `${scenario.name}: nothing lost, duplicated or out of order`,
    async () => {
      const result = await scenario.run();
      expect(result).toMatchObject({ received: result.published, lost: 0, duplicated: 0, outOfOrder: 0 });
    },
    SCENARIO_TIMEOUT_MS,
  );
}

it('judges a client that lost, repeated and reordered updates, and refuses a trimmed history', () => {
  const log = new DeliveryLog();
  log.fault();
  for (const seq of [1, 2, 2, 4, 3, 6]) log.receive(seq);
  log.recovered();
  expect(judge([1, 2, 3, 4, 5, 6], log)).toMatchObject({ published: 6, received: 6, lost: 1, duplicated: 1, outOfOrder: 1 });
  expect(() => judge([3, 4, 5, 6], log)).toThrow(/HISTORY_LIMIT/);
});

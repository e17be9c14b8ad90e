import { apiCrash, apiShutdown } from './api-stop.js';
import {
  clusterDurableJobPrimaryKill,
  clusterJobPrimaryKill,
  clusterNotificationPrimaryKill,
  clusterSubscriberNodeKill,
} from './cluster-failover.js';
import type { FaultScenario } from './fault.js';
import { redisRestart } from './redis-restart.js';
import { sentinelFailover } from './sentinel-failover.js';
import { slowConsumer } from './slow-consumer.js';
import { workerCrash } from './worker-crash.js';

/** Every fault scenario, in report order: test/faults.test.ts and `npm run faults` both run this list. */
export const faultScenarios: FaultScenario[] = [
  redisRestart,
  apiCrash,
  workerCrash,
  apiShutdown,
  slowConsumer,
  sentinelFailover,
  clusterJobPrimaryKill,
  clusterSubscriberNodeKill,
  clusterNotificationPrimaryKill,
  clusterDurableJobPrimaryKill,
];

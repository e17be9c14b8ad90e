import assert from 'node:assert/strict';
import { clientsFor } from '../helpers/herald.js';
import { exitOf, startCluster } from '../helpers/processes.js';
import { DeliveryLog, judge, type FaultResult, type FaultScenario } from './fault.js';
import { finalHistory, followFile, startFile, type Followed } from './follow.js';

/** WebSocket's "going away": what Herald closes its sockets with on shutdown. */
const GOING_AWAY = 1001;

/** The grace period of src/process.ts runUntilSignal. */
const GRACE_MS = 10_000;

/** What stopping the instance did, for the scenario's own checks. */
interface Stopped extends Followed {
  signalledAt: number;
  exited: Promise<{ code: number | null; at: number }>;
}

/**
 * Two API instances and a worker; a client watches a file from the first instance, which gets
 * `signal` at the 50th update; the client resubscribes on the other instance after its last
 * cursor. Recovery is the first update there. `check` asserts what this kind of stop promises.
 */
async function stopApiMidStream(
  signal: NodeJS.Signals,
  user: string,
  check: (stopped: Stopped) => Promise<void>,
): Promise<FaultResult> {
  const cluster = await startCluster(
    { CHUNK_CHARS: '100', PROGRESS_UPDATES: '100000', HISTORY_LIMIT: '5000' },
    { apis: 2, workers: 1 },
  );
  try {
    const survivor = clientsFor(cluster.apiUrls[1]);
    const token = await survivor.token(user);
    const { fileId, cursor } = await startFile(survivor, token, 400);
    const log = new DeliveryLog();
    const exited = exitOf(cluster.apis[0]);
    let signalledAt = 0;
    const followed = await followFile({
      urls: cluster.apiUrls,
      token,
      fileId,
      cursor,
      log,
      onUpdate: (_, received) => {
        if (received.length !== 50) return;
        log.fault();
        signalledAt = Date.now();
        cluster.apis[0].kill(signal);
      },
    });
    await check({ ...followed, signalledAt, exited });
    assert.equal(followed.updates.at(-1)?.event, 'processing_completed');
    return judge(await finalHistory(survivor, token, fileId), log);
  } finally {
    await cluster.stop();
  }
}

/** The instance is SIGKILLed: the stream is cut once, before it ends. */
export const apiCrash: FaultScenario = {
  name: 'API instance SIGKILLed mid-stream',
  run: () =>
    stopApiMidStream('SIGKILL', 'kim', async ({ drops }) => {
      assert.equal(drops.length, 1, 'the kill cut the stream once, before it ended');
    }),
};

/**
 * The instance gets SIGTERM (a deploy): it closes its sockets with 1001 and exits 0 within its
 * grace period.
 */
export const apiShutdown: FaultScenario = {
  name: 'API instance stopped (SIGTERM) mid-stream',
  run: () =>
    stopApiMidStream('SIGTERM', 'tess', async ({ drops, exited, signalledAt }) => {
      assert.deepEqual(drops, [GOING_AWAY], 'the stopping instance closed the socket with 1001, before the stream ended');
      const { code, at } = await exited;
      assert.equal(code, 0, 'the instance exited cleanly');
      assert.ok(at - signalledAt < GRACE_MS, `the instance exited within its grace period (took ${at - signalledAt} ms)`);
    }),
};

import assert from 'node:assert/strict';
import { clientsFor } from '../helpers/herald.js';
import { exitOf, startCluster } from '../helpers/processes.js';
import { DeliveryLog, judge, type FaultScenario } from './fault.js';
import { finalHistory, followFile, startFile } from './follow.js';

/** WebSocket's "going away": what Herald closes its sockets with on shutdown. */
const GOING_AWAY = 1001;

/** The grace period of src/process.ts runUntilSignal. */
const GRACE_MS = 10_000;

/**
 * The API instance a client watches from gets SIGTERM mid-stream (a deploy): it closes its sockets
 * with 1001 and exits 0 within its grace period; the client resubscribes on the other instance
 * after its last cursor. Recovery is the first update there.
 */
export const apiShutdown: FaultScenario = {
  name: 'API instance stopped (SIGTERM) mid-stream',
  async run() {
    const cluster = await startCluster({ CHUNK_CHARS: '100', HISTORY_LIMIT: '5000' }, { apis: 2, workers: 1 });
    try {
      const survivor = clientsFor(cluster.apiUrls[1]);
      const token = await survivor.token('tess');
      const { fileId, cursor } = await startFile(survivor, token, 400);
      const log = new DeliveryLog();
      const exited = exitOf(cluster.apis[0]);
      let signalledAt = 0;
      const { updates, drops } = await followFile({
        urls: cluster.apiUrls,
        token,
        fileId,
        cursor,
        log,
        onUpdate: (_, received) => {
          if (received.length !== 50) return;
          log.fault();
          signalledAt = Date.now();
          cluster.apis[0].kill('SIGTERM');
        },
      });
      assert.deepEqual(drops, [GOING_AWAY], 'the stopping instance closed the socket with 1001, before the stream ended');
      const { code, at } = await exited;
      assert.equal(code, 0, 'the instance exited cleanly');
      assert.ok(at - signalledAt < GRACE_MS, `the instance exited within its grace period (took ${at - signalledAt} ms)`);
      assert.equal(updates.at(-1)?.event, 'processing_completed');
      return judge(await finalHistory(survivor, token, fileId), log);
    } finally {
      await cluster.stop();
    }
  },
};

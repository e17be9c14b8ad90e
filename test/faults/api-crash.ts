import assert from 'node:assert/strict';
import { clientsFor } from '../helpers/herald.js';
import { startCluster } from '../helpers/processes.js';
import { DeliveryLog, judge, type FaultScenario } from './fault.js';
import { finalHistory, followFile, startFile } from './follow.js';

/**
 * The API instance a client watches from is SIGKILLed mid-stream; the client resubscribes on the
 * other instance after its last cursor. Recovery is the first update there.
 */
export const apiCrash: FaultScenario = {
  name: 'API instance SIGKILLed mid-stream',
  async run() {
    const cluster = await startCluster({ CHUNK_CHARS: '100', HISTORY_LIMIT: '5000' }, { apis: 2, workers: 1 });
    try {
      const survivor = clientsFor(cluster.apiUrls[1]);
      const token = await survivor.token('kim');
      const { fileId, cursor } = await startFile(survivor, token, 400);
      const log = new DeliveryLog();
      const { updates, drops } = await followFile({
        urls: cluster.apiUrls,
        token,
        fileId,
        cursor,
        log,
        onUpdate: (_, received) => {
          if (received.length !== 50) return;
          log.fault();
          cluster.apis[0].kill('SIGKILL');
        },
      });
      assert.equal(drops.length, 1, 'the kill cut the stream once, before it ended');
      assert.equal(updates.at(-1)?.event, 'processing_completed');
      return judge(await finalHistory(survivor, token, fileId), log);
    } finally {
      await cluster.stop();
    }
  },
};

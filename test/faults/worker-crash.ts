import assert from 'node:assert/strict';
import { startHerald, type Herald } from '../helpers/herald.js';
import { spawnEntry, waitForOutput } from '../helpers/processes.js';
import { redisUrl } from '../helpers/redis.js';
import { DeliveryLog, judge, type FaultScenario } from './fault.js';
import { finalHistory, followFile, startFile } from './follow.js';

/** A lock short enough for a quick rescue, yet one a loaded 2-core machine keeps renewing; a history that keeps both attempts. */
const workerEnv = {
  CHUNK_CHARS: '100',
  CLASSIFY_BATCH: '500',
  PROGRESS_UPDATES: '100000',
  HISTORY_LIMIT: '10000',
  WORKER_LOCK_MS: '4000',
  WORKER_STALLED_INTERVAL_MS: '1000',
};

/**
 * The worker running a job is SIGKILLed mid-job and a new worker process starts: once the lock
 * expires it takes the stalled job, publishes `attempt_interrupted` (QUEUED) and runs it again from
 * the start. Recovery is that `attempt_interrupted` update.
 */
export const workerCrash: FaultScenario = {
  name: 'worker SIGKILLed mid-job',
  async run() {
    const workers: Array<ReturnType<typeof spawnEntry>> = [];
    let herald: Herald | undefined;
    try {
      herald = await startHerald(workerEnv, { workers: false });
      const env = { REDIS_URL: redisUrl(), KEY_PREFIX: herald.config.keyPrefix, ...workerEnv };
      const doomed = spawnEntry('src/worker.ts', env);
      workers.push(doomed);
      await waitForOutput(doomed, 'worker ready');

      const token = await herald.token('wes');
      const { fileId, cursor } = await startFile(herald, token, 500);
      const log = new DeliveryLog();
      let extracted = 0;
      const { updates } = await followFile({
        urls: [herald.url],
        token,
        fileId,
        cursor,
        log,
        timeoutMs: 30_000,
        onUpdate: (update) => {
          if (update.event === 'attempt_interrupted') log.recovered();
          if (update.event !== 'extraction_progress') return;
          extracted += 1;
          if (extracted !== 20) return;
          log.fault();
          doomed.kill('SIGKILL');
          workers.push(spawnEntry('src/worker.ts', env));
        },
      });
      const events = updates.map((u) => u.event);
      const interrupted = events.indexOf('attempt_interrupted');
      assert.ok(interrupted > 2, 'the stream says the attempt was interrupted, after it had started');
      assert.equal(updates[interrupted]?.status, 'QUEUED');
      assert.equal(events[interrupted + 1], 'processing_started', 'another worker started the job again');
      assert.equal(events.filter((e) => e === 'processing_started').length, 2, 'the job ran twice');
      assert.equal(events.at(-1), 'processing_completed');
      return judge(await finalHistory(herald, token, fileId), log);
    } finally {
      await Promise.all(workers.map((worker) => worker.stop()));
      await herald?.stop();
    }
  },
};

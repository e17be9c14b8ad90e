import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startRedisServer } from '../../src/dev/redis-server.js';
import { nth } from '../helpers/elements.js';
import { startHerald, type Herald } from '../helpers/herald.js';
import { DeliveryLog, judge, type FaultScenario } from './fault.js';
import { finalHistory, followFile, startFile } from './follow.js';

/**
 * Redis (AOF, fsync always) stopped mid-job and started again 300 ms later on its port: the API and
 * the worker reconnect, and an append re-sent after a lost reply is stored once. Recovery is the
 * first update delivered after Redis answers again. It runs its own redis-server, so it may run
 * beside the others.
 */
export const redisRestart: FaultScenario = {
  name: 'Redis restarted (AOF) mid-job',
  async run() {
    const dataDir = mkdtempSync(join(tmpdir(), 'herald-aof-'));
    const redisOptions = { dataDir, appendOnly: true, extraArgs: ['--appendfsync', 'always'] };
    let redis = await startRedisServer(redisOptions);
    let herald: Herald | undefined;
    let restart: Promise<void> | undefined;
    try {
      herald = await startHerald({
        REDIS_URL: redis.url,
        CHUNK_CHARS: '100',
        PROGRESS_UPDATES: '100000',
        HISTORY_LIMIT: '10000',
      });
      const token = await herald.token('rae');
      const { fileId, cursor } = await startFile(herald, token, 400);
      const log = new DeliveryLog();
      let back = false;
      const { updates } = await followFile({
        urls: [herald.url],
        token,
        fileId,
        cursor,
        log,
        timeoutMs: 60_000,
        onUpdate: (_, received) => {
          if (back) log.recovered();
          if (received.length !== 100) return;
          log.fault();
          restart = (async () => {
            await redis.stop();
            await sleep(300);
            redis = await startRedisServer({ ...redisOptions, port: redis.port });
            back = true;
          })();
          // Awaited once the stream ends; a failure before then must not go unhandled meanwhile.
          restart.catch(() => undefined);
        },
      });
      await restart;
      assert.equal(updates.at(-1)?.event, 'processing_completed');
      // Every chunk's progress is stored once per attempt: a re-sent append did not add a second copy.
      const attempts = updates.filter((u) => u.event === 'processing_started').length;
      const progress = updates
        .filter((u) => u.event === 'extraction_progress')
        .map((u) => u.data as { current: number; total: number });
      const chunks = progress.map((p) => p.current);
      const { total } = nth(progress, 0);
      assert.equal(new Set(chunks).size, total, 'every chunk reported');
      if (attempts === 1)
        assert.deepEqual(
          chunks,
          Array.from({ length: total }, (_, i) => i + 1),
          'each chunk reported once',
        );
      return judge(await finalHistory(herald, token, fileId), log);
    } finally {
      await restart?.catch(() => undefined);
      await herald?.stop();
      await redis.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  },
};

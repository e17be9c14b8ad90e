import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { FileProgressDocument, StartFileProcessingDocument, type FileProgressSubscription } from '../src/client/generated.js';
import { startRedisServer, type RedisServer } from '../src/dev/redis-server.js';
import { makeDocument } from './helpers/documents.js';
import { startHerald, type Herald } from './helpers/herald.js';
import { collect } from './helpers/streams.js';

type FileUpdate = FileProgressSubscription['fileProgress'];

const dataDir = mkdtempSync(join(tmpdir(), 'herald-aof-'));
let redis: RedisServer | undefined;
let herald: Herald | undefined;
afterAll(async () => {
  await herald?.stop();
  await redis?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

it('rides out a Redis restart (with AOF) mid-job: the job finishes, nothing is lost or stored twice', async () => {
  redis = await startRedisServer({ dataDir, appendOnly: true, extraArgs: ['--appendfsync', 'always'] });
  const port = redis.port;
  herald = await startHerald({ REDIS_URL: redis.url, CHUNK_CHARS: '100', HISTORY_LIMIT: '10000' });
  const token = await herald.token('rae');
  const { body } = await herald.http(token, StartFileProcessingDocument, { input: { name: 'r.md', content: makeDocument(400) } });
  const { fileId, cursor } = body.data!.startFileProcessing;

  let restarted: Promise<void> | null = null;
  const run = await collect<FileUpdate>(herald.ws(token), FileProgressDocument, { fileId, after: cursor }, {
    field: 'fileProgress',
    timeoutMs: 60_000,
    until: (items) => {
      if (items.length === 100 && !restarted) {
        restarted = (async () => {
          await redis!.stop();
          await new Promise((r) => setTimeout(r, 300));
          redis = await startRedisServer({ dataDir, appendOnly: true, port, extraArgs: ['--appendfsync', 'always'] });
        })();
      }
      return items.at(-1)!.status === 'COMPLETED' || items.at(-1)!.status === 'FAILED';
    },
  });
  await restarted;
  expect(run.items.map((u) => u.seq)).toEqual(run.items.map((_, i) => i + 1));
  expect(run.items.at(-1)!.event).toBe('processing_completed');
  // Every chunk's progress is stored once per attempt: a re-sent append did not add a second copy.
  const attempts = run.items.filter((u) => u.event === 'processing_started').length;
  const chunks = run.items.filter((u) => u.event === 'extraction_progress').map((u) => (u.data as { current: number }).current);
  const total = (run.items.find((u) => u.event === 'extraction_progress')!.data as { total: number }).total;
  expect(new Set(chunks).size).toBe(total);
  if (attempts === 1) expect(chunks).toEqual(Array.from({ length: total }, (_, i) => i + 1));
}, 90_000);

import { afterAll, expect, it } from 'vitest';
import { JobDocument, StartFileProcessingDocument, StartQueryDocument } from '../src/client/generated.js';
import { startWorkers } from '../src/jobs/workers.js';
import { createLogger } from '../src/logger.js';
import { startHerald, type Herald } from './helpers/herald.js';
import { spawnEntry, waitForOutput } from './helpers/processes.js';
import { connect, redisUrl } from './helpers/redis.js';
import { waitFor } from './helpers/streams.js';

const redis = connect();
const stops: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const stop of stops.reverse()) await stop();
  redis.disconnect();
});

async function herald(env: Record<string, string>, workers: boolean): Promise<{ h: Herald; token: string }> {
  const h = await startHerald(env, { workers });
  stops.push(() => h.stop());
  return { h, token: await h.token('kim') };
}

async function startFile(h: Herald, token: string): Promise<string> {
  const { body } = await h.http(token, StartFileProcessingDocument, { input: { name: 'a.md', content: 'One sentence. Two.' } });
  expect(body.errors).toBeUndefined();
  return body.data!.startFileProcessing.fileId;
}

async function jobOf(h: Herald, token: string, id: string) {
  const { body } = await h.http(token, JobDocument, { id });
  expect(body.errors).toBeUndefined();
  return body.data!.job!;
}

it('spreads a kind of job over JOB_QUEUE_SHARDS queues, and finds, runs and reports each job in its own', async () => {
  const { h, token } = await herald({ JOB_QUEUE_SHARDS: '3' }, true);
  const shardOf = async (fileId: string) => {
    const held = await Promise.all([0, 1, 2].map((shard) => redis.exists(`${h.config.keyPrefix}bull:files-${shard}:${fileId}`)));
    expect(held.filter((n) => n === 1)).toHaveLength(1);
    return held.indexOf(1);
  };
  const shards = new Set<number>();
  const fileIds: string[] = [];
  // Ids are random: a few files reach at least two of the three shards (at most 30 tries: (1/3)^29 to fail).
  while (shards.size < 2 && fileIds.length < 30) {
    const fileId = await startFile(h, token);
    fileIds.push(fileId);
    shards.add(await shardOf(fileId));
  }
  expect(shards.size).toBeGreaterThanOrEqual(2);
  await waitFor(async () => (await Promise.all(fileIds.map((id) => jobOf(h, token, id)))).every((j) => j.state === 'COMPLETED'));
  for (const id of fileIds) {
    // attemptsMade comes from the BullMQ job itself: 0 would mean the API looked in the wrong queue.
    expect(await jobOf(h, token, id)).toMatchObject({ state: 'COMPLETED', attemptsMade: 1 });
  }
});

it('runs only the kinds a worker is given with --queues; the others wait for a worker of their own', async () => {
  const { h, token } = await herald({}, false);
  const queriesOnly = spawnEntry('src/worker.ts', { REDIS_URL: redisUrl(), KEY_PREFIX: h.config.keyPrefix, HOST: '127.0.0.1' }, [
    '--queues',
    'query',
  ]);
  stops.push(() => queriesOnly.stop());
  await waitForOutput(queriesOnly, 'worker ready');
  const fileId = await startFile(h, token);
  const { body } = await h.http(token, StartQueryDocument, { input: { question: 'Anything here?' } });
  expect(body.errors).toBeUndefined();
  const { queryId } = body.data!.startQuery;
  await waitFor(async () => (await jobOf(h, token, queryId)).state === 'COMPLETED');
  // The file was queued first; a worker that took files would have finished its two sentences by now.
  expect((await jobOf(h, token, fileId)).state).toBe('WAITING');

  const files = await startWorkers(
    { ...h.config, jobs: { ...h.config.jobs, workerKinds: ['file'] } },
    createLogger('silent', 'test'),
  );
  stops.push(() => files.close());
  await waitFor(async () => (await jobOf(h, token, fileId)).state === 'COMPLETED');
});

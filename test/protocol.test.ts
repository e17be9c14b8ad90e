import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { FileProgressDocument, type FileProgressSubscription } from '../src/client/generated.js';
import { startHerald, type Herald } from './helpers/herald.js';
import { metricValue, scrape } from './helpers/metrics.js';
import { redisUrl } from './helpers/redis.js';
import { collect } from './helpers/streams.js';

// A producer that knows only docs/protocol.md: a plain Redis client and the shipped script.
const script = readFileSync(new URL('../src/updates/append.lua', import.meta.url), 'utf8');

let herald: Herald;
let producer: Redis;
beforeAll(async () => {
  herald = await startHerald({}, { workers: false });
  producer = new Redis(redisUrl());
});
afterAll(async () => {
  producer.disconnect();
  await herald?.stop();
});

it('accepts updates appended through the documented Redis protocol, with no Herald code', async () => {
  const P = herald.config.keyPrefix;
  const id = randomUUID();
  await producer.hset(`${P}resource:{${id}}`, {
    kind: 'file',
    ownerId: 'pat',
    projectId: '',
    name: 'from-python.txt',
    createdAt: new Date().toISOString(),
  });
  const sha = (await producer.script('LOAD', script)) as string;
  const append = (event: string, status: string, progress: number, appendId: string = randomUUID()) =>
    producer.evalsha(
      sha,
      3,
      `${P}update_meta:{file:${id}}`,
      `${P}recent_updates:{file:${id}}`,
      `${P}update_ids:{file:${id}}`,
      '100',
      '3600',
      'PUBLISH',
      randomBytes(8).toString('hex'),
      `"kind":"file","id":"${id}"`,
      JSON.stringify({ event, status, progress, timestamp: new Date().toISOString() }),
      status === 'COMPLETED' ? '1' : '0',
      `${P}updates:{file:${id}}`,
      appendId,
    ) as Promise<string | null>;

  const first = JSON.parse((await append('step', 'PROCESSING', 10))!);
  expect(first).toMatchObject({ seq: 1, kind: 'file', id, update: { event: 'step' } });
  const token = await herald.token('pat');
  // Once the first update has been replayed the subscription is live: what follows comes through pub/sub.
  let replayed = () => {};
  const caughtUp = new Promise<void>((resolve) => (replayed = resolve));
  const watching = collect<FileProgressSubscription['fileProgress']>(
    herald.ws(token),
    FileProgressDocument,
    { fileId: id },
    {
      field: 'fileProgress',
      until: (items) => {
        if (items.length === 1) replayed();
        return false;
      },
    },
  );
  await caughtUp;
  const liveBefore = metricValue(await scrape(herald.url), 'herald_updates_live_total') ?? 0;
  const second = await append('step', 'PROCESSING', 60, 'retry-me');
  // A retry of the same call (same append id), e.g. after a lost reply, stores nothing new.
  expect(await append('step', 'PROCESSING', 60, 'retry-me')).toBe(second);
  await append('done', 'COMPLETED', 100, 'last');
  expect(JSON.parse((await append('done', 'COMPLETED', 100, 'last'))!).seq).toBe(3);
  expect(await append('late', 'PROCESSING', 100)).toBeNull();
  const run = await watching;
  expect(run.completed).toBe(true);
  expect(run.items.map((u) => [u.seq, u.event, u.progress])).toEqual([
    [1, 'step', 10],
    [2, 'step', 60],
    [3, 'done', 100],
  ]);
  expect(metricValue(await scrape(herald.url), 'herald_updates_live_total')).toBe(liveBefore + 2);
});

it('appends several updates of several streams in one documented call, and a re-sent call stores each once', async () => {
  const P = herald.config.keyPrefix;
  const [a, b] = [randomUUID(), randomUUID()];
  const keys = (id: string) => [`${P}update_meta:{file:${id}}`, `${P}recent_updates:{file:${id}}`, `${P}update_ids:{file:${id}}`];
  const args = (id: string, event: string, appendId: string) => [
    randomBytes(8).toString('hex'),
    `"kind":"file","id":"${id}"`,
    JSON.stringify({ event, status: 'PROCESSING', timestamp: new Date().toISOString() }),
    '0',
    `${P}updates:{file:${id}}`,
    appendId,
    '',
    '',
    '',
    '',
  ];
  const sha = (await producer.script('LOAD', script)) as string;
  const call = [
    sha,
    9,
    ...keys(a),
    ...keys(b),
    ...keys(a),
    '100',
    '3600',
    'PUBLISH',
    ...args(a, 'a1', 'a-1'),
    ...args(b, 'b1', 'b-1'),
    ...args(a, 'a2', 'a-2'),
  ] as const;
  const entries = (await producer.evalsha(...call)) as string[];
  expect(entries.map((e) => JSON.parse(e) as { seq: number; id: string })).toMatchObject([
    { seq: 1, id: a, update: { event: 'a1' } },
    { seq: 1, id: b, update: { event: 'b1' } },
    { seq: 2, id: a, update: { event: 'a2' } },
  ]);
  expect(await producer.evalsha(...call)).toEqual(entries);
  expect(await producer.zrange(`${P}recent_updates:{file:${a}}`, 0, -1)).toEqual([entries[0], entries[2]]);
  expect(await producer.zrange(`${P}recent_updates:{file:${b}}`, 0, -1)).toEqual([entries[1]]);
});

it("takes the keys past the first slot's after the arguments, as a call for several slots of one Cluster node sends them", async () => {
  const P = herald.config.keyPrefix;
  const [c, d, project] = [randomUUID(), randomUUID(), randomUUID()];
  const tag = (id: string) => `{project:${project}}:file:${id}`;
  const keysOf = (t: string) => [`${P}update_meta:${t}`, `${P}recent_updates:${t}`, `${P}update_ids:${t}`];
  const args = (t: string, id: string, event: string, projectChannel = '') => [
    randomBytes(8).toString('hex'),
    `"kind":"file","id":"${id}"`,
    JSON.stringify({ event, status: 'PROCESSING', timestamp: new Date().toISOString() }),
    '0',
    `${P}updates:${t}`,
    randomUUID(),
    projectChannel,
    projectChannel && randomBytes(8).toString('hex'),
    '',
    '',
  ];
  const projectKeys = [`${P}update_meta:{project:${project}}`, `${P}recent_updates:{project:${project}}`];
  const sha = (await producer.script('LOAD', script)) as string;
  const entries = (await producer.evalsha(
    sha,
    3,
    ...keysOf(`{file:${c}}`),
    '100',
    '3600',
    'SPUBLISH',
    ...args(`{file:${c}}`, c, 'c1'),
    ...args(tag(d), d, 'd1', `${P}updates:{project:${project}}`),
    ...args(`{file:${c}}`, c, 'c2'),
    ...keysOf(tag(d)),
    ...projectKeys,
    ...keysOf(`{file:${c}}`),
  )) as string[];
  expect(entries.map((e) => JSON.parse(e) as object)).toMatchObject([
    { seq: 1, id: c, update: { event: 'c1' } },
    { seq: 1, id: d, update: { event: 'd1' } },
    { seq: 2, id: c, update: { event: 'c2' } },
  ]);
  expect(await producer.zrange(`${P}recent_updates:{file:${c}}`, 0, -1)).toEqual([entries[0], entries[2]]);
  expect(await producer.zrange(`${P}recent_updates:${tag(d)}`, 0, -1)).toEqual([entries[1]]);
  expect((await producer.zrange(projectKeys[1]!, 0, -1)).map((e) => JSON.parse(e) as object)).toMatchObject([
    { seq: 1, item: JSON.parse(entries[1]!) as object },
  ]);
});

it("builds a query's text from the body pieces a producer appends, as the protocol says", async () => {
  const P = herald.config.keyPrefix;
  const id = randomUUID();
  await producer.hset(`${P}resource:{${id}}`, {
    kind: 'query',
    ownerId: 'pat',
    projectId: '',
    name: '',
    createdAt: new Date().toISOString(),
  });
  const sha = (await producer.script('LOAD', script)) as string;
  // `piece` null: an update that adds nothing to the answer, sent without the body key.
  const append = (event: string, status: string, token: string | null, piece: string | null, restart = false) => {
    const keys = [`${P}update_meta:{query:${id}}`, `${P}recent_updates:{query:${id}}`, `${P}update_ids:{query:${id}}`];
    const args = [
      '100',
      '3600',
      'PUBLISH',
      randomBytes(8).toString('hex'),
      `"kind":"query","id":"${id}"`,
      JSON.stringify({ event, status, token, timestamp: new Date().toISOString() }),
      status === 'COMPLETED' ? '1' : '0',
      `${P}updates:{query:${id}}`,
      randomUUID(),
    ];
    if (piece !== null) {
      keys.push(`${P}update_body:{query:${id}}`);
      args.push('', '', piece, restart ? '1' : '0');
    }
    return producer.evalsha(sha, keys.length, ...keys, ...args) as Promise<string>;
  };
  // A first attempt, then a second that starts the answer over; ranges count UTF-8 bytes.
  expect(JSON.parse(await append('token', 'PROCESSING', 'Hé', 'Hé', true))).toMatchObject({ seq: 1, body: [0, 3] });
  await append('attempt_failed', 'QUEUED', null, null);
  expect(JSON.parse(await append('token', 'PROCESSING', 'Ça', 'Ça', true))).toMatchObject({ body: [3, 6] });
  expect(JSON.parse(await append('token', 'PROCESSING', ' va 🚀', ' va 🚀'))).toMatchObject({ body: [3, 14] });
  await append('done', 'COMPLETED', null, '');
  const token = await herald.token('pat');
  const run = await collect<{ seq: number; text: string | null }>(
    herald.sse(token),
    'subscription ($queryId: ID!) { queryProgress(queryId: $queryId) { seq text } }',
    { queryId: id },
    { field: 'queryProgress' },
  );
  expect(run.items.map((u) => [u.seq, u.text])).toEqual([
    [1, 'Hé'],
    [2, null],
    [3, 'Ça'],
    [4, 'Ça va 🚀'],
    [5, 'Ça va 🚀'],
  ]);
});

import calculateSlot from 'cluster-key-slot';
import type { Cluster as IORedisCluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CancelJobDocument,
  JobDocument,
  FileProgressDocument,
  NotificationsDocument,
  OnlineUsersDocument,
  ProjectProgressDocument,
  QueryProgressDocument,
  RecentUpdatesDocument,
  SendNotificationDocument,
  StartFileProcessingDocument,
  StartQueryDocument,
  NotificationInboxDocument,
  type FileProgressSubscription,
  type NotificationsSubscription,
  type ProjectProgressSubscription,
  type QueryProgressSubscription,
} from '../src/client/generated.js';
import { audienceOf, notificationKeys, targetSource } from '../src/notifications/keys.js';
import { loadConfig } from '../src/config.js';
import { createPublisher } from '../src/publisher.js';
import { createRedis } from '../src/redis.js';
import { withTimeout } from '../src/timeouts.js';
import { resourceStream } from '../src/updates/keys.js';
import { createUpdateStore } from '../src/updates/store.js';
import type { ResourceRef } from '../src/updates/types.js';
import { makeDocument } from './helpers/documents.js';
import { nth } from './helpers/elements.js';
import { clientsFor, type HeraldClients } from './helpers/herald.js';
import { expectResumed, notSeenAfter } from './helpers/notifications.js';
import { startCluster, type Cluster } from './helpers/processes.js';
import { connect, uniquePrefix } from './helpers/redis.js';
import { startRedisCluster, type RedisClusterGroup, type RedisServer } from './helpers/redis-server.js';
import { collect, waitFor, type Collected } from './helpers/streams.js';

type FileUpdate = FileProgressSubscription['fileProgress'];
type QueryUpdate = QueryProgressSubscription['queryProgress'];
type ProjectUpdate = ProjectProgressSubscription['projectProgress'];
type Notification = NotificationsSubscription['notifications'];

const keyPrefix = uniquePrefix();
// The admin here races 160 sends: far past the default per-sender rate.
const settings = {
  KEY_PREFIX: keyPrefix,
  CHUNK_CHARS: '150',
  PRESENCE_HEARTBEAT_MS: '500',
  PRESENCE_TTL_MS: '1500',
  NOTIFY_RATE_LIMIT: '100000',
};
let redis: RedisClusterGroup;
let herald: Cluster<2, 2>;
let api: [HeraldClients, HeraldClients];

beforeAll(async () => {
  redis = await startRedisCluster({ nodeTimeoutMs: 1_000 });
  herald = await startCluster(settings, { apis: 2, workers: 2 }, redis.env);
  api = [clientsFor(herald.apiUrls[0]), clientsFor(herald.apiUrls[1])];
}, 90_000);

afterAll(async () => {
  for (const clients of api ?? []) await clients.dispose();
  await herald?.stop();
  await redis?.stop();
}, 60_000);

/** How many times the cluster's nodes ran `commands` (INFO commandstats), all together. */
async function commandCalls(...commands: string[]): Promise<number> {
  const stats = await Promise.all(
    redis.servers.map(async (server) => {
      const client = connect(server.url);
      try {
        return await client.info('commandstats');
      } finally {
        client.disconnect();
      }
    }),
  );
  const calls = (info: string, name: string) => Number(new RegExp(`^cmdstat_${name}:calls=(\\d+)`, 'm').exec(info)?.[1] ?? 0);
  return stats.reduce((sum, info) => sum + commands.reduce((n, name) => n + calls(info, name), 0), 0);
}

/** The environment a producer outside Herald's processes reads: the cluster and the API's key prefix. */
function producerEnv(nodes = redis.env.REDIS_CLUSTER_NODES) {
  return { REDIS_CLUSTER_NODES: nodes, KEY_PREFIX: keyPrefix };
}

/**
 * A file `user` watches on both instances (graphql-ws and SSE) once its first update reached both,
 * and the slot of its channel.
 */
/** How long a watcher of {@link watchedFile} waits: past the failover waits of the longest test, on a loaded machine. */
const WATCH_MS = 110_000;

async function watchedFile(user: string) {
  const token = await api[0].token(user);
  const producer = createPublisher({ env: producerEnv() });
  const file = await producer.register({ kind: 'file', ownerId: user });
  await producer.append(file, { event: 'queued', status: 'QUEUED' });
  await producer.close();
  const watch = (clients: HeraldClients, transport: 'ws' | 'sse', until?: (items: FileUpdate[]) => boolean) =>
    collect<FileUpdate>(
      transport === 'ws' ? clients.ws(token) : clients.sse(token),
      FileProgressDocument,
      { fileId: file.id, after: null },
      { field: 'fileProgress', until, timeoutMs: WATCH_MS },
    );
  const whole = [watch(api[0], 'ws'), watch(api[1], 'sse')];
  await Promise.all([watch(api[0], 'ws', (items) => items.length > 0), watch(api[1], 'sse', (items) => items.length > 0)]);
  return { file, slot: calculateSlot(resourceStream(keyPrefix, file).channel), whole };
}

/** A file of `user`'s whose stream lives on a shard other than `primary`'s, registered there. */
async function fileOffShard(user: string, primary: RedisServer): Promise<ResourceRef> {
  for (let n = 0; ; n += 1) {
    const ref: ResourceRef = { kind: 'file', id: `${user}-steady-${n}`, projectId: null };
    if ((await redis.shardOf(calculateSlot(resourceStream(keyPrefix, ref).channel))).primary === primary) continue;
    const producer = createPublisher({ env: producerEnv() });
    await producer.register({ kind: 'file', id: ref.id, ownerId: user });
    await producer.close();
    return ref;
  }
}

/** Appends the file's terminal update through a new producer on `nodes`; every watcher gets it after the first, and completes. */
async function finishAndExpect(file: ResourceRef, whole: Array<Promise<Collected<FileUpdate>>>, nodes?: string) {
  const producer = createPublisher({ env: producerEnv(nodes) });
  await producer.append(file, { event: 'processing_completed', status: 'COMPLETED', progress: 100 });
  await producer.close();
  for (const run of await Promise.all(whole)) {
    expect(run.completed).toBe(true);
    expect(run.items.map((u) => [u.seq, u.event])).toEqual([
      [1, 'queued'],
      [2, 'processing_completed'],
    ]);
  }
}

function isTerminal(status: string): boolean {
  return ['COMPLETED', 'FAILED', 'CANCELLED'].includes(status);
}

describe('on a Redis Cluster of three primaries and three replicas', () => {
  it('runs file and query jobs: progress over graphql-ws and SSE on both instances, projectProgress and recentUpdates', async () => {
    const token = await api[0].token({ sub: 'cora', projects: ['apollo'] });
    const project = collect<ProjectUpdate>(
      api[1].ws(token),
      ProjectProgressDocument,
      { projectId: 'apollo' },
      { field: 'projectProgress', until: (items) => items.filter((u) => isTerminal(u.update.status)).length === 3 },
    );
    const started = await Promise.all(
      Array.from({ length: 2 }, async (_, i) => {
        const { body } = await api[0].http(token, StartFileProcessingDocument, {
          input: { name: `c${i}.md`, content: makeDocument(8 + i), projectId: 'apollo' },
        });
        expect(body.errors).toBeUndefined();
        return body.data!.startFileProcessing;
      }),
    );
    const files = await Promise.all(
      started.flatMap(({ fileId, cursor }) => [
        collect<FileUpdate>(api[0].ws(token), FileProgressDocument, { fileId, after: cursor }, { field: 'fileProgress' }),
        collect<FileUpdate>(api[1].sse(token), FileProgressDocument, { fileId, after: cursor }, { field: 'fileProgress' }),
      ]),
    );
    for (const run of files) {
      expect(run.completed).toBe(true);
      expect(run.items.map((u) => u.seq)).toEqual(run.items.map((_, i) => i + 1));
      expect(run.items.at(-1)!.event).toBe('processing_completed');
    }

    const { body } = await api[1].http(token, StartQueryDocument, {
      input: { question: 'What is a cache?', projectId: 'apollo' },
    });
    expect(body.errors).toBeUndefined();
    const { queryId, cursor } = body.data!.startQuery;
    const answers = await Promise.all([
      collect<QueryUpdate>(api[0].sse(token), QueryProgressDocument, { queryId, after: cursor }, { field: 'queryProgress' }),
      collect<QueryUpdate>(api[1].ws(token), QueryProgressDocument, { queryId, after: cursor }, { field: 'queryProgress' }),
    ]);
    for (const run of answers) {
      expect(run.completed).toBe(true);
      expect(run.items.map((u) => u.seq)).toEqual(run.items.map((_, i) => i + 1));
      expect(run.items.at(-1)!.event).toBe('done');
    }
    expect(answers[0].items).toEqual(answers[1].items);

    // The project stream may have opened after the jobs began (it then replays its latest entries):
    // each job's part is a run of consecutive seqs up to its last update.
    const projectItems = (await project).items;
    for (const [i, file] of started.entries()) {
      const seqs = projectItems.filter((u) => 'fileId' in u.update && u.update.fileId === file.fileId).map((u) => u.update.seq);
      const first = seqs[0] ?? 0;
      expect(seqs).toEqual(seqs.map((_, k) => first + k));
      expect(seqs.at(-1)).toBe(nth(files, 2 * i).items.at(-1)!.seq);
    }
    expect(projectItems.some((u) => 'queryId' in u.update && u.update.queryId === queryId)).toBe(true);

    const fileId = nth(started, 0).fileId;
    const recent = await api[1].http(token, RecentUpdatesDocument, { kind: 'FILE', id: fileId, limit: 3 });
    expect(recent.body.errors).toBeUndefined();
    const whole = nth(files, 0).items;
    expect(recent.body.data!.recentUpdates.map((u) => u.seq)).toEqual(whole.slice(-3).map((u) => u.seq));
  });

  it('resumes from a cursor on the other instance, and cancels a running job run by a worker process', async () => {
    const token = await api[0].token('remy');
    const { body } = await api[0].http(token, StartFileProcessingDocument, {
      input: { name: 'long.md', content: makeDocument(3_000) },
    });
    const { fileId, cursor } = body.data!.startFileProcessing;
    const first = await collect<FileUpdate>(
      api[0].ws(token),
      FileProgressDocument,
      { fileId, after: cursor },
      { field: 'fileProgress', until: (items) => items.filter((u) => u.event === 'extraction_progress').length >= 2 },
    );
    const resumeFrom = nth(first.items, first.items.length - 1);
    const resumed = collect<FileUpdate>(
      api[1].sse(token),
      FileProgressDocument,
      { fileId, after: resumeFrom.cursor },
      { field: 'fileProgress' },
    );
    const cancelled = await api[1].http(token, CancelJobDocument, { id: fileId });
    expect(cancelled.body.errors).toBeUndefined();
    const rest = await resumed;
    expect(rest.completed).toBe(true);
    expect(rest.items.map((u) => u.seq)).toEqual(rest.items.map((_, i) => resumeFrom.seq + i + 1));
    expect(rest.items.at(-1)).toMatchObject({ event: 'cancelled', status: 'CANCELLED' });
    expect(rest.items.some((u) => u.event === 'processing_completed')).toBe(false);
  });

  it('notifies a user, a role, a project and everyone, on every instance, and counts presence across instances', async () => {
    const admin = await api[0].token({ sub: 'root', roles: ['admin'] });
    const nia = await api[0].token({ sub: 'nia', roles: ['ops'], projects: ['apollo'] });
    const titles = ['to nia', 'to ops', 'to apollo', 'to all'];
    const tabs = [api[0].ws(nia), api[1].ws(nia)];
    const received = tabs.map((tab) =>
      collect<Notification>(
        tab,
        NotificationsDocument,
        {},
        { field: 'notifications', until: (items) => items.length >= titles.length },
      ),
    );
    await waitFor(async () => {
      const { body } = await api[1].http(admin, OnlineUsersDocument, {});
      return body.data?.onlineUsers.find((u) => u.id === 'nia')?.connections === 2;
    });
    const targets = [
      { kind: 'USER', id: 'nia' },
      { kind: 'ROLE', id: 'ops' },
      { kind: 'PROJECT', id: 'apollo' },
      { kind: 'GLOBAL' },
    ] as const;
    for (const [i, target] of targets.entries()) {
      const { body } = await api[i % 2 === 0 ? 0 : 1].http(admin, SendNotificationDocument, {
        input: { target, title: titles[i]! },
      });
      expect(body.errors).toBeUndefined();
    }
    for (const run of await Promise.all(received)) {
      expect(run.items.map((n) => n.title)).toEqual(titles);
      expect(run.items.map((n) => n.target.kind)).toEqual(targets.map((t) => t.kind));
    }
  });

  it('publishes every message with SPUBLISH to one shard: no node ran a plain PUBLISH', async () => {
    expect(await commandCalls('publish')).toBe(0);
    expect(await commandCalls('spublish')).toBeGreaterThan(0);
  });

  it('appends the updates of all the slots a primary serves in one script call, and slot by slot when its slot map is out of date', async () => {
    const config = loadConfig({ ...producerEnv(), KEY_PREFIX: uniquePrefix() }, { role: 'worker' });
    const connection = createRedis(config.redis, 'commands');
    const store = createUpdateStore(connection, { keyPrefix: config.keyPrefix, ...config.updates });
    const scriptCalls = () => commandCalls('evalsha', 'eval');
    const appendRounds = async (refs: ResourceRef[], rounds: number) => {
      const entries = await Promise.all(
        Array.from({ length: rounds }, (_, round) =>
          refs.map((ref) => store.append(ref, { event: `round-${round}`, status: 'PROCESSING' })),
        ).flat(),
      );
      for (const [i, ref] of refs.entries()) {
        const mine = entries.filter((_, k) => k % refs.length === i);
        expect(mine.map((e) => [e.id, e.seq, e.update.event])).toEqual(
          mine.map((_, round) => [ref.id, round + 1, `round-${round}`]),
        );
      }
    };
    try {
      const refs = Array.from({ length: 400 }, (_, i): ResourceRef => ({ kind: 'file', id: `spread-${i}`, projectId: null }));
      const slots = new Set(refs.map((ref) => calculateSlot(resourceStream(config.keyPrefix, ref).meta)));
      await store.append(nth(refs, 0), { event: 'warm-up', status: 'QUEUED' });
      const before = await scriptCalls();
      await appendRounds(refs.slice(1), 3);
      // One call per slot would be at least one per distinct slot; per primary it is a handful.
      expect(slots.size).toBeGreaterThan(300);
      expect((await scriptCalls()) - before).toBeLessThan(30);

      // A slot map that says a slot is served by another primary than its own: the call sent there
      // meets the slot's keys elsewhere, and its updates go again slot by slot, each stored once.
      const slotMap = (connection as unknown as IORedisCluster).slots;
      const slotOf = (ref: ResourceRef) => calculateSlot(resourceStream(config.keyPrefix, ref).meta);
      const primaryOf = (ref: ResourceRef) => slotMap[slotOf(ref)]?.[0];
      const fresh = Array.from({ length: 20 }, (_, i): ResourceRef => ({ kind: 'file', id: `stale-${i}`, projectId: null }));
      const a = nth(fresh, 0);
      const b = fresh.find((ref) => primaryOf(ref) !== primaryOf(a))!;
      slotMap[slotOf(a)] = [...slotMap[slotOf(b)]!];
      await appendRounds([b, a], 3);
      expect((await store.resourceHistory(a)({ after: 0 })).entries.map((e) => e.seq)).toEqual([1, 2, 3]);
    } finally {
      connection.disconnect();
    }
  });

  it('spreads notifications and presence over the shards: each target and each user in a slot of its own', async () => {
    const admin = await api[0].token({ sub: 'root', roles: ['admin'] });
    const users = Array.from({ length: 20 }, (_, i) => `spread-u${i}`);
    const targets = [
      ...users.map((id) => ({ kind: 'USER', id }) as const),
      ...['r0', 'r1', 'r2', 'r3', 'r4'].map((id) => ({ kind: 'ROLE', id: `spread-${id}` }) as const),
      ...['p0', 'p1', 'p2', 'p3', 'p4'].map((id) => ({ kind: 'PROJECT', id: `spread-${id}` }) as const),
      { kind: 'GLOBAL' } as const,
    ];
    for (const [i, target] of targets.entries()) {
      const { body } = await api[i % 2 === 0 ? 0 : 1].http(admin, SendNotificationDocument, {
        input: { target, title: 'spread' },
      });
      expect(body.errors).toBeUndefined();
    }
    const tabs = await Promise.all(
      users.map(async (user, i) => api[i % 2 === 0 ? 0 : 1].ws(await api[0].token(user), { lazy: false })),
    );
    await waitFor(async () => {
      const { body } = await api[1].http(admin, OnlineUsersDocument, {});
      return users.every((user) => body.data?.onlineUsers.some((u) => u.id === user));
    }, 30_000);

    /** The keys matching `pattern` on each primary, by port, as the primaries themselves hold them. */
    const keysByPrimary = async (pattern: string) => {
      const found = new Map<number, string[]>();
      for (const server of redis.servers) {
        if (server.process.exitCode !== null || server.process.signalCode !== null) continue;
        const client = connect(server.url);
        try {
          if (!(await client.info('replication')).includes('role:master')) continue;
          const keys: string[] = [];
          let cursor = '0';
          do {
            const [next, batch] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
            keys.push(...batch);
            cursor = next;
          } while (cursor !== '0');
          found.set(server.port, keys);
        } finally {
          client.disconnect();
        }
      }
      return found;
    };
    const notifications = await keysByPrimary(`${keyPrefix}notifications:*spread*:entries`);
    const presence = await keysByPrimary(`${keyPrefix}presence:{user:spread-u*}`);
    for (const tab of tabs) await tab.dispose();

    const holding = (found: Map<number, string[]>) => [...found.values()].filter((keys) => keys.length > 0).length;
    const all = (found: Map<number, string[]>) => [...found.values()].flat();
    // Every target's entries once (the pattern leaves GLOBAL's key out), in slots of their own (a few may share one by chance).
    expect(all(notifications)).toHaveLength(targets.length - 1);
    expect(new Set(all(notifications).map((key) => calculateSlot(key))).size).toBeGreaterThan(targets.length / 2);
    expect(holding(notifications)).toBeGreaterThan(1);
    expect(all(presence)).toHaveLength(users.length);
    expect(holding(presence)).toBeGreaterThan(1);
  }, 90_000);

  it("resumes a viewer's notifications from random cursors while many race to their targets on different shards", async () => {
    const admin = await api[0].token({ sub: 'root', roles: ['admin'] });
    const claims = { sub: 'vera', roles: ['race-r1', 'race-r2'], projects: ['race-p1', 'race-p2'] };
    const token = await api[0].token(claims);
    const sources = [...audienceOf({ id: 'vera', roles: claims.roles, projects: claims.projects }).targets, 'receipts:vera'];
    const targets = [
      { kind: 'USER', id: 'vera' },
      { kind: 'ROLE', id: 'race-r1' },
      { kind: 'ROLE', id: 'race-r2' },
      { kind: 'PROJECT', id: 'race-p1' },
      { kind: 'PROJECT', id: 'race-p2' },
      { kind: 'GLOBAL' },
      { kind: 'USER', id: 'not-vera' },
    ] as const;
    const keys = notificationKeys(keyPrefix);
    const slots = new Set(
      targets
        .slice(0, 6)
        .map((target) => calculateSlot(keys.entries(targetSource({ kind: target.kind, id: 'id' in target ? target.id : null })))),
    );
    expect(slots.size).toBeGreaterThan(1);
    const sendTo = async (i: number, target: (typeof targets)[number], title: string): Promise<Notification> => {
      const { body } = await (i % 2 === 0 ? api[0] : api[1]).http(admin, SendNotificationDocument, { input: { target, title } });
      expect(body.errors).toBeUndefined();
      return body.data!.sendNotification;
    };
    const sent: Notification[] = [await sendTo(0, targets[0], 'start')];
    // Resumes start at or after the newest item of vera's inbox: GLOBAL notifications of the tests before are behind them.
    const { body: inboxBody } = await api[0].http(token, NotificationInboxDocument, { first: 1 });
    const start = nth(inboxBody.data!.notificationInbox.edges, 0).node;
    expect(start.title).toBe('start');
    // Items arrive by shard, so the last one sent may come before others: a watcher stops once it has all it is owed.
    let owedFrom: ((from: string) => number) | null = null;
    const done = (from: string) => (items: Notification[]) => owedFrom !== null && items.length >= owedFrom(from);
    const seen: Notification[] = [];
    const watch = (i: number, from: string, onItems?: (items: Notification[]) => void) =>
      collect<Notification>(
        i % 2 === 0 ? api[i % 4 < 2 ? 0 : 1].ws(token) : api[i % 4 < 2 ? 0 : 1].sse(token),
        NotificationsDocument,
        { after: from },
        { field: 'notifications', until: (items) => (onItems?.(items), done(from)(items)), timeoutMs: 90_000 },
      ).then((run) => ({ from, got: run.items }));
    const runs = [watch(0, start.cursor, (items) => seen.splice(0, seen.length, ...items))];
    const sending = (async () => {
      for (let batch = 0; batch < 8; batch += 1) {
        sent.push(
          ...(await Promise.all(
            Array.from({ length: 20 }, (_, i) => sendTo(i, nth(targets, (batch * 3 + i) % targets.length), `race ${batch}.${i}`)),
          )),
        );
      }
    })();
    for (let i = 1; i <= 20; i += 1) {
      await new Promise((r) => setTimeout(r, Math.random() * 40));
      runs.push(watch(i, seen.length === 0 ? start.cursor : nth(seen, Math.floor(Math.random() * seen.length)).cursor));
    }
    await sending;
    // Everything sent so far, and the last one: sent after the count is known, it wakes every watcher.
    const beforeEnd = [...sent];
    owedFrom = (from) => notSeenAfter(from, sources, beforeEnd).length + 1;
    sent.push(await sendTo(1, targets[5], 'end'));
    const results = await Promise.all(runs);
    expect(results.filter((run) => run.got.length > 1).length).toBeGreaterThan(10);
    for (const { from, got } of results) expectResumed(from, got, sources, sent);
  }, 120_000);

  it('resyncs the streams of a slot moved to another primary: a terminal update sent after the move arrives at once', async () => {
    const { file, slot, whole } = await watchedFile('max');
    await redis.moveSlot(slot);
    await finishAndExpect(file, whole);
  }, 60_000);

  it('resyncs the streams of a shard whose primary froze and failed over: a terminal update sent meanwhile arrives at once', async () => {
    const { file, slot, whole } = await watchedFile('fay');
    const { primary, replicas } = await redis.shardOf(slot);
    const elsewhere = await fileOffShard('fay', primary);
    // SIGSTOP, not SIGKILL: the subscribers' connections to the frozen primary stay open and
    // silent, so nothing but Herald's own resync can bring what the new primary publishes.
    redis.freeze(primary);
    try {
      // Producers that connect while it is frozen, before anything failed over, reach the other
      // shards at once: nothing a connection does first may wait on one primary.
      const producers = Array.from({ length: 12 }, () => createPublisher({ env: producerEnv() }));
      const appended = Promise.all(
        producers.map((producer, i) => producer.append(elsewhere, { event: `steady ${i}`, status: 'PROCESSING' })),
      ).then(() => true);
      expect(await withTimeout(appended, 20_000, false)).toBe(true);
      await Promise.all(producers.map((producer) => producer.close()));

      await waitFor(async () => {
        const infos = await Promise.all(
          replicas.map(async (replica) => {
            const client = connect(replica.url);
            try {
              return await client.info('replication');
            } finally {
              client.disconnect();
            }
          }),
        );
        return infos.some((info) => info.includes('role:master'));
      }, 30_000);
      // And every live node's slot map says so: a client that still routed the slot to the frozen
      // primary would wait on it for good.
      const others = redis.servers.filter((server) => server !== primary && server.process.signalCode === null);
      await waitFor(async () => {
        const views = await Promise.all(
          others.map(async (server) => {
            const client = connect(server.url);
            try {
              return String(await client.call('CLUSTER', 'NODES'));
            } finally {
              client.disconnect();
            }
          }),
        );
        return views.every((view) =>
          view.split('\n').some((line) => line.includes(`:${primary.port}@`) && line.split(' ')[2]!.split(',').includes('fail')),
        );
      }, 30_000);
      const live = redis.servers.filter((server) => server !== primary).map((server) => `127.0.0.1:${server.port}`);
      await finishAndExpect(file, whole, live.join(','));
    } finally {
      // Gone for good, so the next test's look at the cluster asks a server that is still there.
      await redis.kill(primary);
    }
  }, 120_000);

  it("rides out the SIGKILL of the primary that holds a running job's stream: no failed attempt, every seq once and in order", async () => {
    // The job's stream lives in its project's slot: pick a project whose shard still has a live
    // replica to promote (the test above killed one primary for good).
    let project = '';
    for (let n = 0; !project; n += 1) {
      const { replicas } = await redis.shardOf(calculateSlot(`project:p${n}`));
      if (replicas.some((replica) => replica.process.exitCode === null && replica.process.signalCode === null)) project = `p${n}`;
    }
    const token = await api[0].token({ sub: 'kit', projects: [project] });
    const { body } = await api[0].http(token, StartFileProcessingDocument, {
      input: { name: 'long.md', content: makeDocument(12_000), projectId: project },
    });
    expect(body.errors).toBeUndefined();
    const { fileId, cursor } = body.data!.startFileProcessing;
    let progressing = () => {};
    const started = new Promise<void>((resolve) => (progressing = resolve));
    const watching = collect<FileUpdate>(
      api[1].ws(token),
      FileProgressDocument,
      { fileId, after: cursor },
      {
        field: 'fileProgress',
        until: (items) => {
          if (items.some((u) => u.event === 'extraction_progress')) progressing();
          return false;
        },
        timeoutMs: 75_000,
      },
    );
    await started;
    const { primary } = await redis.shardOf(calculateSlot(`project:${project}`));
    primary.process.kill('SIGKILL');
    const run = await watching;
    expect(run.completed).toBe(true);
    expect(run.items.map((u) => u.seq)).toEqual(run.items.map((_, i) => i + 1));
    expect(run.items.map((u) => u.event)).not.toContain('attempt_failed');
    expect(run.items.at(-1)!.event).toBe('processing_completed');
    const job = await api[0].http(token, JobDocument, { id: fileId });
    expect(job.body.data!.job).toMatchObject({ state: 'COMPLETED', attemptsMade: 1, failedReason: null });
  }, 120_000);
});

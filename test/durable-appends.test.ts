import calculateSlot from 'cluster-key-slot';
import { Cluster, type Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { resourceStream } from '../src/updates/keys.js';
import { AppendNotReplicatedError, createUpdateStore } from '../src/updates/store.js';
import type { ResourceRef } from '../src/updates/types.js';
import { connect, uniquePrefix } from './helpers/redis.js';
import { startRedisCluster, startRedisServer, type RedisServer } from './helpers/redis-server.js';
import { waitFor } from './helpers/streams.js';

// APPEND_WAIT_REPLICAS against a real primary and its replica; the replica is frozen with SIGSTOP.
let primary: RedisServer;
let replica: RedisServer;
let admin: Redis;
const keyPrefix = uniquePrefix();
const durableOptions = { keyPrefix, historyLimit: 100, ttlSeconds: 3600, appendWaitReplicas: 1, appendWaitTimeoutMs: 200 };

beforeAll(async () => {
  primary = await startRedisServer();
  replica = await startRedisServer({ extraArgs: ['--replicaof', '127.0.0.1', String(primary.port)] });
  admin = connect(primary.url);
  const probe = connect(replica.url);
  try {
    await waitFor(async () => (await probe.info('replication')).includes('master_link_status:up'), 30_000);
  } finally {
    probe.disconnect();
  }
}, 60_000);

afterAll(async () => {
  admin?.disconnect();
  replica?.process.kill('SIGCONT');
  await Promise.all([replica?.stop(), primary?.stop()]);
});

/** Runs `body` with the replica frozen (it holds its connection but reads nothing), then thaws it. */
async function withReplicaFrozen<T>(body: () => Promise<T>): Promise<T> {
  replica.process.kill('SIGSTOP');
  try {
    return await body();
  } finally {
    replica.process.kill('SIGCONT');
  }
}

/** How many times the primary ran `command` so far. */
async function commandCalls(command: string): Promise<number> {
  const stats = await admin.info('commandstats');
  return Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(stats)?.[1] ?? 0);
}

it('acknowledges an append once the replica has it, every update stored once', async () => {
  const connection = connect(primary.url);
  const replicaConnection = connect(replica.url);
  try {
    const store = createUpdateStore(connection, durableOptions);
    const ref: ResourceRef = { kind: 'file', id: 'confirmed' };
    const waitsBefore = await commandCalls('wait');
    const entries = await Promise.all(
      Array.from({ length: 40 }, (_, i) => store.append(ref, { event: 'tick', status: 'PROCESSING', data: { i } })),
    );
    expect(entries.map((e) => e.seq)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    // Batched like the appends: one WAIT per call, not per update.
    const waits = (await commandCalls('wait')) - waitsBefore;
    expect(waits).toBeGreaterThan(0);
    expect(waits).toBeLessThan(40);
    // Acknowledged means the replica holds it already.
    const history = store.resourceHistory(ref);
    const onReplica = createUpdateStore(replicaConnection, durableOptions).resourceHistory(ref);
    expect((await onReplica({ after: 0 })).entries).toEqual((await history({ after: 0 })).entries);
  } finally {
    connection.disconnect();
    replicaConnection.disconnect();
  }
});

it('does not acknowledge an append while the replica is frozen, then stores it once when it thaws', async () => {
  const connection = connect(primary.url);
  try {
    const store = createUpdateStore(connection, { ...durableOptions, appendWaitWithinMs: 60_000 });
    const ref: ResourceRef = { kind: 'file', id: 'frozen' };
    await store.append(ref, { event: 'before', status: 'PROCESSING' });
    const scriptCallsBefore = await commandCalls('evalsha');
    let acknowledged = false;
    // Wrapped, so the thaw does not wait for the append.
    const appending = await withReplicaFrozen(async () => {
      const during = store.append(ref, { event: 'during', status: 'PROCESSING' });
      void during.then(() => (acknowledged = true));
      // WAITs time out meanwhile, each followed by the same call re-sent.
      await waitFor(async () => (await commandCalls('evalsha')) >= scriptCallsBefore + 2, 60_000);
      expect(acknowledged).toBe(false);
      return { during };
    });
    const entry = await appending.during;
    expect(entry).toMatchObject({ seq: 2, update: { event: 'during' } });
    const read = await store.resourceHistory(ref)({ after: 0 });
    expect(read.entries.map((e) => [e.seq, e.update.event])).toEqual([
      [1, 'before'],
      [2, 'during'],
    ]);
    expect(read.lastSeq).toBe(2);
  } finally {
    connection.disconnect();
  }
}, 120_000);

it('re-sends an append whose connection closed while its WAIT waited, and stores it once', async () => {
  const connection = connect(primary.url);
  try {
    // WAIT waits for the frozen replica for as long as the test needs it to.
    const store = createUpdateStore(connection, { ...durableOptions, appendWaitTimeoutMs: 60_000 });
    const onAdmin = createUpdateStore(admin, durableOptions);
    const ref: ResourceRef = { kind: 'file', id: 'cut-off' };
    const id = await connection.client('ID');
    let settled = false;
    const appending = await withReplicaFrozen(async () => {
      const cut = store.append(ref, { event: 'cut', status: 'PROCESSING' });
      void cut.then(
        () => (settled = true),
        () => (settled = true),
      );
      // The script has run: the call's WAIT is waiting on the frozen replica when its connection closes.
      await waitFor(async () => (await onAdmin.resourceHistory(ref)({ after: 0 })).lastSeq === 1, 30_000);
      await admin.client('KILL', 'ID', id);
      // Re-sent on the new connection, it waits for the replica again instead of failing.
      await waitFor(async () => String(await admin.call('CLIENT', 'LIST', 'TYPE', 'normal')).includes(' cmd=wait '), 30_000);
      expect(settled).toBe(false);
      return { cut };
    });
    expect(await appending.cut).toMatchObject({ seq: 1, update: { event: 'cut' } });
    expect((await store.resourceHistory(ref)({ after: 0 })).entries.map((e) => e.seq)).toEqual([1]);
  } finally {
    connection.disconnect();
  }
}, 120_000);

it('fails an append no replica confirmed within REDIS_FAILOVER_WAIT_MS, with a clear error', async () => {
  const connection = connect(primary.url);
  try {
    const store = createUpdateStore(connection, { ...durableOptions, appendWaitWithinMs: 1_000 });
    const ref: ResourceRef = { kind: 'file', id: 'unconfirmed' };
    await withReplicaFrozen(async () => {
      const failed = store.append(ref, { event: 'lonely', status: 'PROCESSING' });
      await expect(failed).rejects.toBeInstanceOf(AppendNotReplicatedError);
      await expect(failed).rejects.toThrow(/0 of 1 replicas \(APPEND_WAIT_REPLICAS\) confirmed the append within 1000 ms/);
    });
    // It was stored on the primary, once, however often it was re-sent.
    expect((await store.resourceHistory(ref)({ after: 0 })).entries.map((e) => e.seq)).toEqual([1]);
  } finally {
    connection.disconnect();
  }
});

it('sends no WAIT and waits for no replica when APPEND_WAIT_REPLICAS is 0, the default', async () => {
  const connection = connect(primary.url);
  try {
    const store = createUpdateStore(connection, { keyPrefix, historyLimit: 100, ttlSeconds: 3600 });
    const ref: ResourceRef = { kind: 'file', id: 'not-durable' };
    const waitsBefore = await commandCalls('wait');
    const entry = await withReplicaFrozen(() => store.append(ref, { event: 'fast', status: 'PROCESSING' }));
    expect(entry.seq).toBe(1);
    expect(await commandCalls('wait')).toBe(waitsBefore);
  } finally {
    connection.disconnect();
  }
});

it('on a Redis Cluster, follows a slot that moved away from a stale slot map: acknowledged where it went, stored once', async () => {
  const cluster = await startRedisCluster({ nodeTimeoutMs: 5_000 });
  // No periodic slot map refresh: the map stays stale after the move, as Herald's does for up to 2 s.
  const connection = new Cluster(cluster.env.REDIS_CLUSTER_NODES!.split(','), { slotsRefreshInterval: 0 });
  try {
    // A Cluster answers what the store asks of a Redis, as in src/redis.ts.
    const store = createUpdateStore(connection as unknown as Redis, durableOptions);
    const ref: ResourceRef = { kind: 'file', id: 'moved' };
    await store.append(ref, { event: 'before', status: 'PROCESSING' });
    await cluster.moveSlot(calculateSlot(resourceStream(keyPrefix, ref).channel));
    // The pipeline of script and WAIT goes to the former primary first, which answers MOVED.
    const entry = await store.append(ref, { event: 'after', status: 'PROCESSING' });
    expect(entry).toMatchObject({ seq: 2, update: { event: 'after' } });
    const read = await store.resourceHistory(ref)({ after: 0 });
    expect(read.entries.map((e) => [e.seq, e.update.event])).toEqual([
      [1, 'before'],
      [2, 'after'],
    ]);
  } finally {
    connection.disconnect();
    await cluster.stop();
  }
}, 120_000);

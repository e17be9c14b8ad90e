import { afterAll, describe, expect, it } from 'vitest';
import type { ChannelListener } from '../src/redis.js';
import { encodeCursor } from '../src/updates/cursor.js';
import { resourceStream } from '../src/updates/keys.js';
import { createUpdateHub } from '../src/updates/hub.js';
import { createUpdateStore, StreamEndedError } from '../src/updates/store.js';
import { openStream, type StreamEvent } from '../src/updates/stream.js';
import { isTerminal, type UpdateEntry, type ResourceRef } from '../src/updates/types.js';
import { nth } from './helpers/elements.js';
import { connect, monitorCommands, uniquePrefix } from './helpers/redis.js';
import { startRedisServer } from './helpers/redis-server.js';

const connections = Array.from({ length: 8 }, () => connect());
const subscriber = connect();
const keyPrefix = uniquePrefix();
const store = createUpdateStore(nth(connections, 0), { keyPrefix, historyLimit: 10_000, ttlSeconds: 3600 });
const stores = connections.map((c) => createUpdateStore(c, { keyPrefix, historyLimit: 10_000, ttlSeconds: 3600 }));
const hub = createUpdateHub(subscriber);

afterAll(() => {
  for (const c of [...connections, subscriber]) c.disconnect();
});

/** Subscribes (confirmed by Redis), then gives a promise of the first `count` messages. */
async function collect(channel: string, count: number): Promise<{ messages: Promise<UpdateEntry[]> }> {
  const seen: UpdateEntry[] = [];
  let done: (entries: UpdateEntry[]) => void = () => {};
  const result = new Promise<UpdateEntry[]>((resolve) => (done = resolve));
  const listener: ChannelListener = {
    onMessage(m) {
      seen.push(m as UpdateEntry);
      if (seen.length === count) {
        hub.unsubscribe(channel, listener);
        done(seen);
      }
    },
  };
  await hub.subscribe(channel, listener);
  return { messages: result };
}

async function drain<E>(iterator: AsyncIterableIterator<StreamEvent<E>>, until: (e: StreamEvent<E>[]) => boolean) {
  const events: StreamEvent<E>[] = [];
  for await (const event of iterator) {
    events.push(event);
    if (until(events)) break;
  }
  return events;
}

describe('update store', () => {
  it('assigns seqs 1..N atomically under concurrent appends, and history and published order agree', async () => {
    const ref: ResourceRef = { kind: 'file', id: 'concurrent', projectId: 'p-conc' };
    const total = 800;
    const live = await collect(store.resourceChannel(ref), total);
    const liveProject = await collect(store.projectChannel('p-conc'), total);
    const appended = await Promise.all(
      Array.from({ length: total }, (_, i) =>
        nth(stores, i % stores.length).append(ref, { event: 'tick', status: 'PROCESSING', data: { i } }),
      ),
    );
    expect(appended.map((e) => e.seq).sort((a, b) => a - b)).toEqual(Array.from({ length: total }, (_, i) => i + 1));

    const published = await live.messages;
    expect(published.map((e) => e.seq)).toEqual(Array.from({ length: total }, (_, i) => i + 1));

    const history = await store.resourceHistory(ref)({ after: 0 });
    expect(history.entries.map((e) => e.seq)).toEqual(published.map((e) => e.seq));
    expect(history.entries.map((e) => JSON.stringify(e))).toEqual(published.map((e) => JSON.stringify(e)));

    const project = await liveProject.messages;
    expect(project.map((e) => (e as unknown as { seq: number }).seq)).toEqual(published.map((e) => e.seq));
  });

  it('sends appends queued behind an in-flight call together: each stream in order, each stored once, a few script calls', async () => {
    // A Redis of its own, so its command statistics count this store's calls only.
    const redis = await startRedisServer();
    const connection = connect(redis.url);
    try {
      const own = createUpdateStore(connection, { keyPrefix, historyLimit: 1_000, ttlSeconds: 3600 });
      const refs: ResourceRef[] = [
        { kind: 'file', id: 'batch-a' },
        { kind: 'query', id: 'batch-b', projectId: 'p-batch' },
        { kind: 'file', id: 'batch-c', projectId: 'p-batch' },
      ];
      const perStream = 200;
      const appended = await Promise.all(
        Array.from({ length: perStream * refs.length }, (_, i) =>
          own.append(nth(refs, i % refs.length), { event: 'tick', status: 'PROCESSING', data: { i } }),
        ),
      );
      // 600 updates: the first alone, the rest in calls of at most 256 (and the call ioredis loads the script with).
      const stats = await connection.info('commandstats');
      const calls = [...stats.matchAll(/cmdstat_(?:evalsha|eval):calls=(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
      expect(calls).toBeLessThanOrEqual(5);
      refs.forEach((ref, r) => {
        const mine = appended.filter((_, i) => i % refs.length === r);
        expect(mine.map((e) => e.seq)).toEqual(Array.from({ length: perStream }, (_, i) => i + 1));
        expect(mine.every((e) => e.kind === ref.kind && e.id === ref.id)).toBe(true);
      });
      for (const [r, ref] of refs.entries()) {
        const history = await own.resourceHistory(ref)({ after: 0 });
        expect(history.entries.map((e) => (e.update.data as { i: number }).i)).toEqual(
          Array.from({ length: perStream }, (_, i) => i * refs.length + r),
        );
      }
      const project = await own.projectHistory('p-batch')({ after: 0 });
      expect(project.entries.map((e) => (e.item.update.data as { i: number }).i)).toEqual(
        Array.from({ length: perStream * refs.length }, (_, i) => i).filter((i) => i % refs.length !== 0),
      );
    } finally {
      connection.disconnect();
      await redis.stop();
    }
  });

  it('keeps between the limit and limit + limit / 8 entries, and the append ids of exactly those', async () => {
    const small = createUpdateStore(nth(connections, 1), { keyPrefix, historyLimit: 16, ttlSeconds: 3600 });
    const ref: ResourceRef = { kind: 'file', id: 'slack' };
    const ids = resourceStream(keyPrefix, ref).appendIds;
    for (let i = 1; i <= 60; i += 1) {
      await small.append(ref, { event: 'tick', status: 'PROCESSING' });
      const read = await small.resourceHistory(ref)({ after: 0 });
      const seqs = read.entries.map((e) => e.seq);
      expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, k) => i - seqs.length + 1 + k));
      expect(seqs.length).toBe(i <= 16 ? i : 16 + ((i - 16) % 2));
      const kept = await nth(connections, 1).zrange(ids, 0, -1, 'WITHSCORES');
      expect(kept.filter((_, k) => k % 2 === 1).map((score) => -Number(score))).toEqual([...seqs].reverse());
    }
  });

  it('trims history to the limit and refuses appends after a terminal update', async () => {
    const small = createUpdateStore(nth(connections, 1), { keyPrefix, historyLimit: 5, ttlSeconds: 3600 });
    const ref: ResourceRef = { kind: 'query', id: 'trim' };
    for (let i = 0; i < 12; i += 1) await small.append(ref, { event: 'tick', status: 'PROCESSING' });
    await small.append(ref, { event: 'done', status: 'COMPLETED' });
    const read = await small.resourceHistory(ref)({ after: 0 });
    expect(read.entries.map((e) => e.seq)).toEqual([9, 10, 11, 12, 13]);
    expect(read.firstSeq).toBe(9);
    expect(read.final).toBe(true);
    await expect(small.append(ref, { event: 'late', status: 'PROCESSING' })).rejects.toBeInstanceOf(StreamEndedError);
    // The append ids that recognise a retried call are kept exactly as long as their entries.
    const ids = await nth(connections, 1).zrange(resourceStream(keyPrefix, ref).appendIds, 0, -1, 'WITHSCORES');
    expect(ids.filter((_, i) => i % 2 === 1).map((score) => -Number(score))).toEqual([13, 12, 11, 10, 9]);
  });

  it('resumes from random cursors while publishing: every update after the cursor exactly once, in order', async () => {
    const ref: ResourceRef = { kind: 'file', id: 'resume' };
    const total = 600;
    const read = store.resourceHistory(ref);
    const channel = store.resourceChannel(ref);
    const publishing = (async () => {
      for (let i = 1; i <= total; i += 1) {
        await nth(stores, i % stores.length).append(ref, {
          event: i === total ? 'done' : 'tick',
          status: i === total ? 'COMPLETED' : 'PROCESSING',
        });
      }
    })();
    const results: Array<Promise<{ from: number; seqs: number[] }>> = [];
    for (let k = 0; k < 40; k += 1) {
      await new Promise((r) => setTimeout(r, Math.random() * 15));
      const head = await read({ last: 1 });
      if (!head.epoch) continue;
      const from = Math.floor(Math.random() * (head.lastSeq + 1));
      results.push(
        openStream({
          hub,
          channel,
          read,
          after: { epoch: head.epoch, seq: from },
          replay: 0,
          isFinal: (e: UpdateEntry) => isTerminal(e.update.status),
          queueLimit: 1_000,
        }).then(async (it) => ({
          from,
          seqs: (await drain(it, () => false)).map((e) => (e.type === 'entry' ? e.entry.seq : -1)),
        })),
      );
    }
    await publishing;
    const all = await Promise.all(results);
    expect(all.length).toBeGreaterThan(10);
    for (const { from, seqs } of all) {
      expect(seqs).toEqual(Array.from({ length: total - from }, (_, i) => from + i + 1));
    }
  });

  it('says in-band when the cursor is older than the history kept, or from a lost epoch', async () => {
    const small = createUpdateStore(nth(connections, 2), { keyPrefix, historyLimit: 3, ttlSeconds: 3600 });
    const ref: ResourceRef = { kind: 'file', id: 'gap' };
    const first = await small.append(ref, { event: 'a', status: 'PROCESSING' });
    for (let i = 0; i < 5; i += 1) await small.append(ref, { event: 'b', status: 'PROCESSING' });
    await small.append(ref, { event: 'end', status: 'COMPLETED' });
    const options = {
      hub,
      channel: small.resourceChannel(ref),
      read: small.resourceHistory(ref),
      replay: 0,
      isFinal: (e: UpdateEntry) => isTerminal(e.update.status),
      queueLimit: 100,
    };
    const trimmed = await drain(await openStream({ ...options, after: { epoch: first.epoch, seq: 1 } }), () => false);
    expect(trimmed[0]).toMatchObject({ type: 'gap', gap: { reason: 'TRIMMED', epoch: first.epoch, resumesAfter: 4 } });
    expect(trimmed.slice(1).map((e) => (e.type === 'entry' ? e.entry.seq : 0))).toEqual([5, 6, 7]);

    const lost = await openStream({ ...options, after: { epoch: 'deadbeef', seq: 2 } });
    const events = await drain(lost, () => false);
    expect(events[0]).toMatchObject({ type: 'gap', gap: { reason: 'EPOCH_CHANGED', epoch: first.epoch } });
    expect(events.slice(1).map((e) => (e.type === 'entry' ? e.entry.seq : 0))).toEqual([5, 6, 7]);
    expect(encodeCursor({ epoch: first.epoch, seq: 7 })).toMatch(/^[A-Za-z0-9_-]+$/);
  });

  it('fills a seq that skips ahead from history, as when pub/sub dropped a message', async () => {
    const ref: ResourceRef = { kind: 'query', id: 'skip' };
    const read = store.resourceHistory(ref);
    const it = await openStream({
      hub,
      channel: 'nobody-publishes-here',
      read,
      after: null,
      replay: 10,
      isFinal: (e: UpdateEntry) => isTerminal(e.update.status),
      queueLimit: 100,
    });
    await store.append(ref, { event: 'a', status: 'PROCESSING' });
    await store.append(ref, { event: 'b', status: 'PROCESSING' });
    const last = await store.append(ref, { event: 'c', status: 'COMPLETED' });
    await nth(connections, 0).publish('nobody-publishes-here', JSON.stringify(last));
    const events = await drain(it, () => false);
    expect(events.map((e) => (e.type === 'entry' ? e.entry.update.event : 'gap'))).toEqual(['a', 'b', 'c']);
  });

  it('takes the first update of a resource without history live, reading history only to fill a real gap', async () => {
    const ref: ResourceRef = { kind: 'file', id: 'fresh' };
    const history = store.resourceHistory(ref);
    const reads: string[] = [];
    const read: typeof history = (request) => {
      reads.push(JSON.stringify(request));
      return history(request);
    };
    const options = {
      hub,
      channel: store.resourceChannel(ref),
      read,
      after: null,
      replay: 10,
      isFinal: (e: UpdateEntry) => isTerminal(e.update.status),
      queueLimit: 100,
    };
    // Many subscribers wait on a resource that has no history yet, as when a job is announced before it starts.
    const streams = await Promise.all(Array.from({ length: 50 }, () => openStream(options)));
    expect(reads).toHaveLength(50);
    for (const event of ['a', 'b']) await store.append(ref, { event, status: 'PROCESSING' });
    await store.append(ref, { event: 'c', status: 'COMPLETED' });
    const seen = await Promise.all(streams.map((stream) => drain(stream, () => false)));
    for (const events of seen) expect(events.map((e) => (e.type === 'entry' ? e.entry.seq : 'gap'))).toEqual([1, 2, 3]);
    // Each opened with one read; seq 1 of a new history follows nothing, so none read again.
    expect(reads).toHaveLength(50);

    // A stream on a resource without history that first hears of seq 2 has missed seq 1: it reads it.
    const late: ResourceRef = { kind: 'file', id: 'fresh-late' };
    const lateStream = await openStream({
      ...options,
      channel: 'nobody-publishes-here-either',
      read: store.resourceHistory(late),
    });
    await store.append(late, { event: 'a', status: 'PROCESSING' });
    const second = await store.append(late, { event: 'b', status: 'COMPLETED' });
    await nth(connections, 0).publish('nobody-publishes-here-either', JSON.stringify(second));
    const events = await drain(lateStream, () => false);
    expect(events.map((e) => (e.type === 'entry' ? e.entry.update.event : 'gap'))).toEqual(['a', 'b']);
  });

  it('catches every open stream up from history after the Redis subscriber reconnects, with one read for all at the same seq', async () => {
    const ownSubscriber = connect();
    const ownHub = createUpdateHub(ownSubscriber);
    const ref: ResourceRef = { kind: 'file', id: 'resync-together' };
    await store.append(ref, { event: 'before', status: 'PROCESSING' });
    const streams = await Promise.all(
      Array.from({ length: 100 }, () =>
        openStream({
          hub: ownHub,
          channel: store.resourceChannel(ref),
          read: store.resourceHistory(ref),
          after: null,
          replay: 10,
          isFinal: (e: UpdateEntry) => isTerminal(e.update.status),
          queueLimit: 100,
        }),
      ),
    );
    const monitor = await monitorCommands();
    const reconnected = new Promise((resolve) => ownSubscriber.once('ready', resolve));
    ownSubscriber.disconnect(true);
    // Published while the subscriber is away: pub/sub loses these, history keeps them.
    await store.append(ref, { event: 'during-1', status: 'PROCESSING' });
    await store.append(ref, { event: 'during-2', status: 'COMPLETED' });
    await reconnected;
    const seen = await Promise.all(streams.map((stream) => drain(stream, () => false)));
    await monitor.settled();
    monitor.stop();
    for (const events of seen) {
      expect(events.map((e) => (e.type === 'entry' ? e.entry.update.event : 'gap'))).toEqual(['before', 'during-1', 'during-2']);
    }
    // All 100 were at seq 1 when the reconnect told them to catch up: one read served them all.
    const { history } = resourceStream(keyPrefix, ref);
    const reads = monitor.commands.filter(
      ({ command, args }) => command === 'evalsha' && args.includes(history) && args.includes('after'),
    );
    expect(reads).toHaveLength(1);
    ownSubscriber.disconnect();
  });
});

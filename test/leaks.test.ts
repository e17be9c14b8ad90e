import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { print } from 'graphql';
import { createClient, type Client } from 'graphql-ws';
import { afterAll, beforeAll, expect, it } from 'vitest';
import WebSocket from 'ws';
import { FileProgressDocument } from '../src/client/generated.js';
import { createPublisher, type Publisher, type ResourceRef } from '../src/publisher.js';
import { encodeCursor } from '../src/updates/cursor.js';
import { nth } from './helpers/elements.js';
import { startHerald, type Herald } from './helpers/herald.js';
import { connect, redisUrl } from './helpers/redis.js';
import { waitFor } from './helpers/streams.js';

// The server runs in this process, so its heap can be measured after a real garbage collection.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const RACES = 3_000;
const AT_ONCE = 40;
const HISTORY = 150;
const EVENT_WAIT_MS = 50;
const LONG_STREAM = 200_000;
const BATCH = 1_000;
/** Printed with a failure, so the same sequence of races can be run again (LEAK_SEED=...). */
const SEED = Number(process.env.LEAK_SEED ?? Date.now() % 2 ** 31);

let herald: Herald;
let publisher: Publisher;
let token: string;
/** A running file with a long history, so a subscription from its start is mid-replay for a while; updates keep coming. */
let busy: ResourceRef;
/** A running file with no updates: a subscription to it gets no event before it is dropped. */
let quiet: ResourceRef;
/** A finished file with a long history: its streams end by themselves once they have replayed it. */
let done: ResourceRef;
let epoch: string;

beforeAll(async () => {
  // The long SSE stream's subscriber may be two batches behind: it must get every update live.
  const env = { HISTORY_LIMIT: '1000', MAX_CONNECTIONS_PER_USER: '1000', SUBSCRIBER_QUEUE_LIMIT: String(4 * BATCH) };
  herald = await startHerald(env, { workers: false });
  publisher = createPublisher({ env: { REDIS_URL: redisUrl(), KEY_PREFIX: herald.config.keyPrefix, HISTORY_LIMIT: '1000' } });
  token = await herald.token('lee');
  const register = () => publisher.register({ kind: 'file', ownerId: 'lee' });
  [busy, quiet, done] = await Promise.all([register(), register(), register()]);
  for (const file of [busy, done]) {
    for (let i = 0; i < HISTORY; i += 1) {
      ({ epoch } = await publisher.append(file, { event: 'extraction_progress', status: 'PROCESSING', progress: i / 10 }));
    }
  }
  await publisher.append(done, { event: 'processing_completed', status: 'COMPLETED', progress: 100 });
});
afterAll(async () => {
  await publisher?.close();
  await herald?.stop();
});

/** A small seeded generator (mulberry32): the races differ from run to run, and a failing run can be replayed. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/**
 * When a client gives up: as soon as it has asked, after some milliseconds, or after some events
 * (often mid-replay; a stream with fewer events is given up after EVENT_WAIT_MS instead).
 */
type DisposePoint = { at: 'sent' } | { at: 'delay'; ms: number } | { at: 'event'; count: number };

interface Race {
  /**
   * `websocket`: one raw graphql-transport-ws socket per race; `client`: graphql-ws' own client, its
   * subscriptions multiplexed over a few shared sockets that stay open while one is disposed; `sse`.
   */
  transport: 'websocket' | 'client' | 'sse';
  file: ResourceRef;
  /** From the first update (a long replay), or the server's default replay. */
  fromStart: boolean;
  dispose: DisposePoint;
  /** WebSocket only: how it gives up (drop the TCP connection, close politely, or complete the operation first). */
  how: 'terminate' | 'close' | 'complete';
}

function pickRace(next: () => number): Race {
  const pick = <T>(options: readonly T[]): T => nth(options, Math.floor(next() * options.length));
  const point = pick(['sent', 'delay', 'event'] as const);
  const dispose: DisposePoint =
    point === 'sent'
      ? { at: 'sent' }
      : point === 'delay'
        ? { at: 'delay', ms: Math.floor(next() * 15) }
        : { at: 'event', count: 1 + Math.floor(next() * 40) };
  return {
    transport: pick(['websocket', 'client', 'sse'] as const),
    file: pick([busy, quiet, done]),
    fromStart: next() < 0.5,
    dispose,
    how: pick(['terminate', 'close', 'complete'] as const),
  };
}

function operation(race: Race) {
  const after = race.fromStart ? encodeCursor({ epoch, seq: 0 }) : null;
  return { query: print(FileProgressDocument), variables: { fileId: race.file.id, after } };
}

/** Calls `dispose` once, at the race's dispose point; `onEvent` is to be called once per event received. */
function disposeAt(point: DisposePoint, dispose: () => void): { onSent(): void; onEvent(): void } {
  let events = 0;
  let disposed = false;
  const once = () => {
    if (!disposed) dispose();
    disposed = true;
  };
  return {
    onSent() {
      if (point.at === 'sent') once();
      else setTimeout(once, point.at === 'delay' ? point.ms : EVENT_WAIT_MS);
    },
    onEvent() {
      events += 1;
      if (point.at === 'event' && events === point.count) once();
    },
  };
}

/** One raw graphql-ws session that subscribes and gives up at its dispose point; resolves once the socket is closed. */
function raceWebSocket(race: Race): Promise<void> {
  return new Promise((resolve) => {
    const socket = new WebSocket(herald.wsUrl, 'graphql-transport-ws');
    const stop = disposeAt(race.dispose, () => {
      if (race.how === 'terminate') return socket.terminate();
      if (race.how === 'complete') socket.send(JSON.stringify({ id: 'a', type: 'complete' }));
      socket.close();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => resolve());
    socket.on('open', () =>
      socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } })),
    );
    socket.on('message', (data: Buffer) => {
      const { type } = JSON.parse(data.toString()) as { type: string };
      if (type === 'connection_ack') {
        socket.send(JSON.stringify({ id: 'a', type: 'subscribe', payload: operation(race) }));
        stop.onSent();
      } else if (type === 'next') {
        stop.onEvent();
      } else if (type === 'complete' || type === 'error') {
        socket.close();
      }
    });
  });
}

/** One subscription through a shared graphql-ws client, disposed at its dispose point unless it ends first. */
function raceClient(race: Race, client: Client): Promise<void> {
  return new Promise((resolve) => {
    let dispose = () => {};
    const stop = disposeAt(race.dispose, () => {
      dispose();
      resolve();
    });
    dispose = client.subscribe(operation(race), {
      next: () => stop.onEvent(),
      error: () => resolve(),
      complete: () => resolve(),
    });
    stop.onSent();
  });
}

/** One SSE request that subscribes and aborts at its dispose point (or reads to the end); resolves once it is over. */
async function raceSse(race: Race): Promise<void> {
  const abort = new AbortController();
  const stop = disposeAt(race.dispose, () => abort.abort());
  try {
    const request = fetch(`${herald.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: `Bearer ${token}` },
      body: JSON.stringify(operation(race)),
      signal: abort.signal,
    });
    stop.onSent();
    const reader = (await request).body!.pipeThrough(new TextDecoderStream()).getReader();
    let tail = '';
    for (;;) {
      const { value, done: over } = await reader.read();
      if (over) return;
      const text = tail + value;
      const events = text.split('event: next').length - 1;
      tail = text.slice(-'event: next'.length);
      for (let i = 0; i < events; i += 1) stop.onEvent();
    }
  } catch (error) {
    if (!abort.signal.aborted) throw error;
  }
}

async function runRaces(count: number, next: () => number): Promise<void> {
  const clients = Array.from({ length: 4 }, () =>
    createClient({ url: herald.wsUrl, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${token}` } }),
  );
  const run = (race: Race, index: number) => {
    if (race.transport === 'websocket') return raceWebSocket(race);
    if (race.transport === 'client') return raceClient(race, nth(clients, index % clients.length));
    return raceSse(race);
  };
  try {
    for (let started = 0; started < count; started += AT_ONCE) {
      const races = Array.from({ length: Math.min(AT_ONCE, count - started) }, () => pickRace(next));
      await Promise.all(races.map(run));
    }
  } finally {
    for (const client of clients) await client.dispose();
  }
}

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${herald.url}/metrics`)).text();
  return [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))].reduce((sum, m) => sum + Number(m[1]), 0);
}

/** Redis's own count of subscribers of every channel the races touched, by channel. */
async function channelSubscribers(): Promise<Record<string, number>> {
  const redis = connect();
  try {
    const { store } = herald.app.services;
    const channels = [busy, quiet, done].map((file) => store.resourceChannel(file));
    const reply = (await redis.call('PUBSUB', 'NUMSUB', ...channels)) as Array<string | number>;
    return Object.fromEntries(channels.map((channel, i) => [channel, Number(reply[2 * i + 1])]));
  } finally {
    redis.disconnect();
  }
}

const noSubscribers = (counts: Record<string, number>) => Object.values(counts).every((count) => count === 0);

async function heapAfterGc(): Promise<number> {
  for (let i = 0; i < 3; i += 1) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return process.memoryUsage().heapUsed;
}

/** Waits for everything that must be back where it was once every client has gone; a leak times out here and is reported below. */
async function settled(): Promise<void> {
  await waitFor(
    async () => (await metric('herald_subscriptions')) === 0 && (await metric('herald_live_streams')) === 0,
    10_000,
  ).catch(() => undefined);
  await waitFor(
    async () => (await metric('herald_websocket_connections')) === 0 && noSubscribers(await channelSubscribers()),
    5_000,
  ).catch(() => undefined);
}

it('returns to its baseline of heap, streams and Redis subscriptions after thousands of subscribe/dispose races', async () => {
  const next = random(SEED);
  const producing = { on: true };
  const producer = (async () => {
    while (producing.on) {
      await publisher.append(busy, { event: 'extraction_progress', status: 'PROCESSING' });
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  })();
  try {
    await runRaces(250, next);
    await settled();
    const baseline = await heapAfterGc();

    await runRaces(RACES, next);
    await settled();
    const after = await heapAfterGc();

    const seed = `LEAK_SEED=${SEED}`;
    expect(await metric('herald_subscriptions'), seed).toBe(0);
    expect(await metric('herald_live_streams'), seed).toBe(0);
    const subscribers = await channelSubscribers();
    expect(subscribers, seed).toEqual(Object.fromEntries(Object.keys(subscribers).map((channel) => [channel, 0])));
    // Retained memory would grow with the races (each holds a stream, a socket and their buffers);
    // what remains is allocator noise.
    expect((after - baseline) / 1024 / 1024, seed).toBeLessThan(8);
  } finally {
    producing.on = false;
    await producer;
  }
}, 180_000);

/**
 * One raw SSE subscription to `file` (confirmed once the response has come) that tells, through
 * `reached`, when it has received the update with a given seq.
 */
async function followSse(file: ResourceRef, abort: AbortController) {
  const response = await fetch(`${herald.url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: `Bearer ${token}` },
    body: JSON.stringify({
      query: 'subscription($id: ID!) { fileProgress(fileId: $id) { seq } }',
      variables: { id: file.id },
    }),
    signal: abort.signal,
  });
  let seq = 0;
  let events = 0;
  const waiting = { seq: Infinity, resolve: () => {} };
  const reading = (async () => {
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    let tail = '';
    for (;;) {
      const { value, done: over } = await reader.read();
      if (over) return;
      const text = tail + value;
      const last = [...text.matchAll(/"seq":(\d+)\}/g)].at(-1);
      if (last) seq = Math.max(seq, Number(last[1]));
      events += text.split('event: next').length - tail.split('event: next').length;
      tail = text.slice(-32);
      if (seq >= waiting.seq) waiting.resolve();
    }
  })().catch((error: unknown) => {
    if (!abort.signal.aborted) throw error;
  });
  return {
    reading,
    /** Updates received: every one, when none was skipped for a slow consumer. */
    events: () => events,
    reached: (target: number) =>
      new Promise<void>((resolve) => {
        if (seq >= target) return resolve();
        waiting.seq = target;
        waiting.resolve = resolve;
      }),
  };
}

it('holds no memory for the updates a long-lived SSE subscription has delivered', async () => {
  const file = await publisher.register({ kind: 'file', ownerId: 'lee' });
  // A first update before the subscription, so that it is replayed and everything after it arrives live.
  await publisher.append(file, { event: 'processing_started', status: 'PROCESSING' });
  const abort = new AbortController();
  const follower = await followSse(file, abort);
  let appended = 1;
  /** Appends a batch at once (ioredis pipelines them) while the subscriber takes the previous one: nothing queues up. */
  const feed = async (count: number) => {
    for (const end = appended + count; appended < end; appended += BATCH) {
      const batch = Array.from({ length: BATCH }, () => publisher.append(file, { event: 'token', status: 'PROCESSING' }));
      await follower.reached(appended);
      await Promise.all(batch);
    }
    await follower.reached(appended);
  };
  try {
    await feed(5 * BATCH);
    const baseline = await heapAfterGc();
    await feed(LONG_STREAM);
    const after = await heapAfterGc();
    expect(follower.events()).toBe(appended);
    // With Promise.race against a never-settling promise per next(): 86 MB.
    expect((after - baseline) / 1024 / 1024).toBeLessThan(6);
  } finally {
    abort.abort();
    await follower.reading;
  }
  await waitFor(async () => (await metric('herald_live_streams')) === 0);
}, 300_000);

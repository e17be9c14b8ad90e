import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { print } from 'graphql';
import { afterAll, beforeAll, expect, it } from 'vitest';
import WebSocket from 'ws';
import { FileProgressDocument } from '../src/client/generated.js';
import { createPublisher, type Publisher, type ResourceRef } from '../src/publisher.js';
import { encodeCursor } from '../src/updates/cursor.js';
import { startHerald, type Herald } from './helpers/herald.js';
import { connect, redisUrl } from './helpers/redis.js';
import { waitFor } from './helpers/streams.js';

// The server runs in this process, so its heap can be measured after a real garbage collection.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const RACES = 2_000;
const AT_ONCE = 25;
const HISTORY = 150;

let herald: Herald;
let publisher: Publisher;
let token: string;
/** A file with a long history, so a subscription from its start is mid-replay for a while; updates keep coming. */
let busy: ResourceRef;
let busyStart: string;
/** A file with no updates: a subscription to it gets no event before it is dropped. */
let quiet: ResourceRef;

beforeAll(async () => {
  herald = await startHerald({ HISTORY_LIMIT: '1000', MAX_CONNECTIONS_PER_USER: '1000' }, { workers: false });
  publisher = createPublisher({ env: { REDIS_URL: redisUrl(), KEY_PREFIX: herald.config.keyPrefix, HISTORY_LIMIT: '1000' } });
  token = await herald.token('lee');
  busy = await publisher.register({ kind: 'file', ownerId: 'lee' });
  quiet = await publisher.register({ kind: 'file', ownerId: 'lee' });
  const first = await publisher.append(busy, { event: 'queued', status: 'QUEUED' });
  busyStart = encodeCursor({ epoch: first.epoch, seq: 0 });
  for (let i = 1; i < HISTORY; i += 1) await publisher.append(busy, { event: 'extraction_progress', status: 'PROCESSING', progress: i / 10 });
});
afterAll(async () => {
  await publisher?.close();
  await herald?.stop();
});

const subscribeFrame = (id: string, fileId: string, after: string | null) =>
  JSON.stringify({ id, type: 'subscribe', payload: { query: print(FileProgressDocument), variables: { fileId, after } } });

/**
 * One raw graphql-ws session that subscribes and then gives up in one of the ways clients do.
 * Resolves once its socket is closed.
 */
function race(kind: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = new WebSocket(herald.wsUrl, 'graphql-transport-ws');
    socket.on('error', () => undefined);
    socket.on('close', () => resolve());
    socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } })));
    socket.on('message', (data: Buffer) => {
      const { type } = JSON.parse(data.toString()) as { type: string };
      if (type === 'connection_ack') {
        switch (kind) {
          case 0: // drops the connection during the replay (see below)
          case 1: // completes during the replay, then closes
            socket.send(subscribeFrame('a', busy.id, busyStart));
            return;
          case 2: // subscribes and drops before the first event
            socket.send(subscribeFrame('q', quiet.id, null));
            socket.terminate();
            return;
          case 3: // subscribes and completes in the same breath, before the subscription is set up
            socket.send(subscribeFrame('b', busy.id, busyStart));
            socket.send(JSON.stringify({ id: 'b', type: 'complete' }));
            socket.close();
            return;
          default: // subscribes twice and closes politely with both running
            socket.send(subscribeFrame('c', busy.id, null));
            socket.send(subscribeFrame('d', quiet.id, null));
            setTimeout(() => socket.close(), 5);
        }
      } else if (type === 'next' && kind === 0) {
        socket.terminate();
      } else if (type === 'next' && kind === 1) {
        socket.send(JSON.stringify({ id: 'a', type: 'complete' }));
        socket.close();
      }
    });
  });
}

async function runRaces(count: number): Promise<void> {
  for (let started = 0; started < count; started += AT_ONCE) {
    await Promise.all(Array.from({ length: AT_ONCE }, (_, i) => race((started + i) % 5)));
  }
}

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${herald.url}/metrics`)).text();
  return [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))].reduce((sum, m) => sum + Number(m[1]), 0);
}

async function channelSubscribers(): Promise<number> {
  const redis = connect();
  try {
    const { store } = herald.app.services;
    const reply = (await redis.call('PUBSUB', 'NUMSUB', store.resourceChannel(busy), store.resourceChannel(quiet))) as Array<string | number>;
    return Number(reply[1]) + Number(reply[3]);
  } finally {
    redis.disconnect();
  }
}

async function heapAfterGc(): Promise<number> {
  for (let i = 0; i < 3; i += 1) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return process.memoryUsage().heapUsed;
}

/** Everything that must be back where it was once every client has gone. */
async function settled(): Promise<void> {
  await waitFor(async () => (await metric('herald_subscriptions')) === 0 && (await metric('herald_live_streams')) === 0, 10_000);
  await waitFor(async () => (await metric('herald_websocket_connections')) === 0 && (await channelSubscribers()) === 0, 10_000);
}

it('returns to its baseline of heap, streams and Redis subscriptions after thousands of subscribe/drop races', async () => {
  const producing = { on: true };
  const producer = (async () => {
    while (producing.on) {
      await publisher.append(busy, { event: 'extraction_progress', status: 'PROCESSING' });
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  })();
  try {
    await runRaces(250);
    await settled();
    const baseline = await heapAfterGc();

    await runRaces(RACES);
    await settled();
    const after = await heapAfterGc();

    expect(await metric('herald_subscriptions')).toBe(0);
    expect(await metric('herald_live_streams')).toBe(0);
    expect(await channelSubscribers()).toBe(0);
    // Retained memory would grow with the races (each holds a stream, a socket and their buffers);
    // what remains is allocator noise.
    expect((after - baseline) / 1024 / 1024).toBeLessThan(8);
  } finally {
    producing.on = false;
    await producer;
  }
}, 120_000);

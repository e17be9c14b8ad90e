import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startHerald, type Herald } from './helpers/herald.js';

// Herald speaks graphql-transport-ws itself (src/transport/ws-protocol.ts): these pin the
// protocol's rules, with the close codes graphql-ws's own server uses, on a raw socket.

let herald: Herald;
let token: string;
beforeAll(async () => {
  herald = await startHerald({}, { workers: false });
  token = await herald.token('pat');
});
afterAll(() => herald?.stop());

interface Frame {
  type: string;
  id?: string;
  payload?: unknown;
}

/** A raw socket that records every frame and how it closed. */
function open(protocols = ['graphql-transport-ws']) {
  const socket = new WebSocket(herald.wsUrl, protocols);
  const frames: Frame[] = [];
  const waiters: Array<() => void> = [];
  socket.on('message', (data: Buffer) => {
    frames.push(JSON.parse(data.toString()) as Frame);
    for (const wake of waiters.splice(0)) wake();
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    socket.on('close', (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  const opened = new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  return {
    frames,
    closed,
    async send(frame: Frame | string) {
      await opened;
      socket.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
    },
    /** Resolves with the first frame (from the start) that matches. */
    async frame(match: (frame: Frame) => boolean): Promise<Frame> {
      for (;;) {
        const found = frames.find(match);
        if (found) return found;
        await new Promise<void>((resolve) => waiters.push(resolve));
      }
    },
    async init() {
      await this.send({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } });
      await this.frame((f) => f.type === 'connection_ack');
    },
    close: () => socket.close(),
  };
}

describe('closes with graphql-ws close codes', () => {
  it('4406 for a socket that asks for no subprotocol', async () => {
    expect((await open([]).closed).code).toBe(4406);
  });

  it('4400 for a message that is not a protocol message', async () => {
    const socket = open();
    await socket.send('{"type":"hello"}');
    expect(await socket.closed).toMatchObject({ code: 4400 });
  });

  it('4401 for a subscribe before the connection is acknowledged', async () => {
    const socket = open();
    await socket.send({ type: 'subscribe', id: '1', payload: { query: '{ me { id } }' } });
    expect((await socket.closed).code).toBe(4401);
  });

  it('4429 for a second connection_init', async () => {
    const socket = open();
    await socket.init();
    await socket.send({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } });
    expect((await socket.closed).code).toBe(4429);
  });

  it('4409 for a subscribe that reuses the id of a running operation', async () => {
    const socket = open();
    await socket.init();
    const subscribe = { type: 'subscribe', id: 'n', payload: { query: 'subscription { notifications { cursor } }' } };
    await socket.send(subscribe);
    await socket.send(subscribe);
    expect(await socket.closed).toMatchObject({ code: 4409, reason: 'Subscriber for n already exists' });
  });
});

it('answers a ping with a pong carrying its payload', async () => {
  const socket = open();
  await socket.init();
  await socket.send({ type: 'ping', payload: { t: 1 } });
  expect(await socket.frame((f) => f.type === 'pong')).toEqual({ type: 'pong', payload: { t: 1 } });
  socket.close();
});

it('runs a query as one next and a complete, and reports a bad document as an error message', async () => {
  const socket = open();
  await socket.init();
  await socket.send({ type: 'subscribe', id: 'q', payload: { query: '{ me { id } }' } });
  await socket.send({ type: 'subscribe', id: 'bad', payload: { query: '{ nope }' } });
  expect(await socket.frame((f) => f.id === 'q' && f.type === 'next')).toMatchObject({
    payload: { data: { me: { id: 'pat' } } },
  });
  await socket.frame((f) => f.id === 'q' && f.type === 'complete');
  const error = await socket.frame((f) => f.id === 'bad');
  expect(error).toMatchObject({ type: 'error', payload: [{ extensions: { code: 'BAD_USER_INPUT' } }] });
  expect(socket.frames.filter((f) => f.id === 'bad')).toHaveLength(1);
  socket.close();
});

it('stops a subscription on complete, and lets its id be used again', async () => {
  const socket = open();
  await socket.init();
  const send = (id: string, title: string) =>
    socket.send({
      type: 'subscribe',
      id,
      payload: {
        query: `mutation { sendNotification(input: { target: { kind: USER, id: "pat" }, title: "${title}" }) { cursor } }`,
      },
    });
  const sent = async (id: string, title: string) => {
    await send(id, title);
    const frame = (await socket.frame((f) => f.id === id && f.type === 'next')) as {
      payload: { data: { sendNotification: { cursor: string } } };
    };
    return frame.payload.data.sendNotification.cursor;
  };
  // Both subscriptions start after the same notification, so each would replay what follows it.
  const start = await sent('m0', 'before');
  const subscribe = {
    type: 'subscribe',
    id: 's',
    payload: { query: `subscription { notifications(after: "${start}") { title } }` },
  };
  await socket.send(subscribe);
  await socket.send({ type: 'complete', id: 's' });
  await socket.send(subscribe);
  await sent('m1', 'first');
  await sent('m2', 'second');
  await socket.frame(
    (f) =>
      f.id === 's' &&
      f.type === 'next' &&
      (f.payload as { data: { notifications: { title: string } } }).data.notifications.title === 'second',
  );
  await socket.send({ type: 'ping' });
  await socket.frame((f) => f.type === 'pong');
  // The second subscription delivers each notification once; the first, stopped, delivers nothing.
  expect(socket.frames.filter((f) => f.id === 's')).toEqual([
    { id: 's', type: 'next', payload: { data: { notifications: { title: 'first' } } } },
    { id: 's', type: 'next', payload: { data: { notifications: { title: 'second' } } } },
  ]);
  socket.close();
  expect((await socket.closed).code).toBe(1005);
});

it('sends frames of every length encoding, with multi-byte text, whole and in order', async () => {
  const socket = open();
  await socket.init();
  // Frames written together in one tick: short ones (< 126 bytes), medium ones (< 64 KiB) and a
  // long one (≥ 64 KiB, the 8-byte length), each payload mixing 1- to 4-byte UTF-8 characters.
  const bodies = Array.from({ length: 12 }, (_, i) => `${i}: ${'aé€😀'.repeat(1_500)}`);
  const send =
    'mutation Send($body: String!) { sendNotification(input: { target: { kind: USER, id: "pat" }, title: "t", body: $body }) { body } }';
  for (const [i, body] of bodies.entries())
    await socket.send({ type: 'subscribe', id: `m${i}`, payload: { query: send, variables: { body } } });
  for (const [i, body] of bodies.entries()) {
    expect(await socket.frame((f) => f.id === `m${i}` && f.type === 'next')).toEqual({
      id: `m${i}`,
      type: 'next',
      payload: { data: { sendNotification: { body } } },
    });
  }
  await socket.send({
    type: 'subscribe',
    id: 'inbox',
    payload: { query: '{ notificationInbox(first: 12) { edges { node { body } } } }' },
  });
  const inbox = (await socket.frame((f) => f.id === 'inbox' && f.type === 'next')) as {
    payload: { data: { notificationInbox: { edges: Array<{ node: { body: string } }> } } };
  };
  expect(Buffer.byteLength(JSON.stringify(inbox))).toBeGreaterThan(65_536);
  expect(inbox.payload.data.notificationInbox.edges.map((edge) => edge.node.body)).toEqual([...bodies].reverse());
  expect(socket.frames.filter((f) => f.id === 'inbox').map((f) => f.type)).toEqual(['next', 'complete']);
  socket.close();
});

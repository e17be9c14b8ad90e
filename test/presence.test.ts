import type { Client } from 'graphql-ws';
import { afterAll, describe, expect, it } from 'vitest';
import { startInstances, TEST_SECRET, wsClient, type Herald } from './helpers/herald.js';
import type { Tuple } from './helpers/elements.js';
import { spawnEntry, waitForOutput } from './helpers/processes.js';
import { connect, monitorCommands, redisUrl } from './helpers/redis.js';
import { freePort } from './helpers/redis-server.js';
import { waitFor } from './helpers/streams.js';

interface OnlineUser {
  id: string;
  connections: number;
}

const ONLINE = '{ onlineUsers { id connections } }';
const PRESENCE = { PRESENCE_HEARTBEAT_MS: '200', PRESENCE_TTL_MS: '1000' };

const redis = connect();
const started: Herald[] = [];
const cleanups: Array<() => unknown> = [];
afterAll(async () => {
  for (const cleanup of cleanups) await cleanup();
  await Promise.all(started.map((h) => h.stop()));
  redis.disconnect();
});

async function instances<const N extends number>(count: N, env: Record<string, string> = {}): Promise<Tuple<Herald, N>> {
  const apps = await startInstances(count, { ...PRESENCE, ...env });
  started.push(...apps);
  return apps;
}

/** A graphql-ws client to `url` that has been acknowledged. */
async function tab(url: string, token: string): Promise<Client> {
  const client = wsClient(url, token, { lazy: false });
  cleanups.push(() => client.dispose());
  await new Promise<void>((resolve, reject) => {
    client.on('connected', () => resolve());
    client.on('closed', (event) => reject(new Error(`closed before acknowledged: ${JSON.stringify(event)}`)));
  });
  return client;
}

async function online(h: Herald): Promise<OnlineUser[]> {
  const { body } = await h.http<{ onlineUsers: OnlineUser[] }>(await h.token({ sub: 'root', roles: ['admin'] }), ONLINE);
  expect(body.errors).toBeUndefined();
  return body.data!.onlineUsers;
}

async function eventuallyOnline(h: Herald, expected: OnlineUser[], timeoutMs = 5_000): Promise<void> {
  let last: OnlineUser[] = [];
  try {
    await waitFor(async () => JSON.stringify((last = await online(h))) === JSON.stringify(expected), timeoutMs);
  } catch {
    expect(last).toEqual(expected);
  }
}

describe('presence', () => {
  it("counts each user's connections over every instance, and takes closed ones off", async () => {
    const [a, b] = await instances(2);
    const [alice, bob] = await Promise.all([a.token('alice'), a.token('bob')]);
    const aliceTabs = [await tab(a.wsUrl, alice), await tab(a.wsUrl, alice), await tab(b.wsUrl, alice)] as const;
    await tab(b.wsUrl, bob);
    const everyone = [
      { id: 'alice', connections: 3 },
      { id: 'bob', connections: 1 },
    ];
    await eventuallyOnline(a, everyone);
    expect(await online(b)).toEqual(everyone);

    await aliceTabs[0].dispose();
    await aliceTabs[2].dispose();
    await eventuallyOnline(b, [
      { id: 'alice', connections: 1 },
      { id: 'bob', connections: 1 },
    ]);

    await b.stop();
    started.splice(started.indexOf(b), 1);
    await eventuallyOnline(a, [{ id: 'alice', connections: 1 }], 500);
  });

  it('answers onlineUsers to admins only', async () => {
    const [a] = await instances(1);
    const { body } = await a.http(await a.token({ sub: 'eve', roles: ['ops'] }), ONLINE);
    expect(body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  });

  it("forgets an instance killed with SIGKILL once its TTL passes, and its connections no longer count against the user's cap", async () => {
    const cap = { MAX_CONNECTIONS_PER_USER: '2' };
    const [a] = await instances(1, cap);
    const port = await freePort();
    const child = spawnEntry('src/main.ts', {
      REDIS_URL: redisUrl(),
      JWT_SECRET: TEST_SECRET,
      KEY_PREFIX: a.config.keyPrefix,
      PORT: String(port),
      HOST: '127.0.0.1',
      ...PRESENCE,
      ...cap,
    });
    cleanups.push(() => child.stop());
    await waitForOutput(child, 'API ready');
    await tab(a.wsUrl, await a.token('carol'));
    await tab(`ws://127.0.0.1:${port}/graphql`, await a.token('carol'));
    await tab(`ws://127.0.0.1:${port}/graphql`, await a.token('dan'));
    await eventuallyOnline(a, [
      { id: 'carol', connections: 2 },
      { id: 'dan', connections: 1 },
    ]);

    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    const killedAt = Date.now();
    // Nothing cleaned up after the killed process: its entry is still there until the TTL ends it.
    expect(await online(a)).toEqual([
      { id: 'carol', connections: 2 },
      { id: 'dan', connections: 1 },
    ]);
    await eventuallyOnline(a, [{ id: 'carol', connections: 1 }], 3_000);
    expect(Date.now() - killedAt).toBeLessThan(Number(PRESENCE.PRESENCE_TTL_MS) + 500);
    // Carol's second connection was on the killed instance: once it is forgotten she may open another.
    await waitFor(async () => Object.keys(await redis.hgetall(`${a.config.keyPrefix}presence:{user:carol}`)).length === 1);
    await tab(a.wsUrl, await a.token('carol'));
    await eventuallyOnline(a, [{ id: 'carol', connections: 2 }]);
  });

  it("writes, per connection, only the user's and the instance's keys: no slot takes every connection's write", async () => {
    const [a] = await instances(1);
    // The instance announces itself once at start (the index is written then, and by heartbeats that heal).
    await waitFor(async () => (await redis.scard(`${a.config.keyPrefix}presence:{presence}:instances`)) === 1);
    const monitor = await monitorCommands();
    const erin = await tab(a.wsUrl, await a.token('erin'));
    await eventuallyOnline(a, [{ id: 'erin', connections: 1 }]);
    await erin.dispose();
    await eventuallyOnline(a, []);
    await monitor.settled();
    monitor.stop();
    const prefix = `${a.config.keyPrefix}presence:`;
    const written = monitor.commands
      .filter(({ command }) => !/^(smembers|exists|hgetall|script)$/.test(command))
      .flatMap(({ command, args }) => args.filter((arg) => arg.startsWith(prefix)).map((key) => `${command} ${key}`));
    expect(written.some((write) => write.includes('{user:erin}'))).toBe(true);
    for (const write of written) expect(write).toMatch(/\{user:erin\}|\{instance:[^}]+\}:/);
  });
});

import { print, type DocumentNode, type ExecutionResult } from 'graphql';
import type { Client } from 'graphql-ws';
import { afterAll, describe, expect, it } from 'vitest';
import {
  FileProgressDocument,
  PresenceChangedDocument,
  PresenceDocument,
  ProjectProgressDocument,
  StartFileProcessingDocument,
  type PresenceChangedSubscription,
  type PresenceTarget,
} from '../src/client/generated.js';
import { startInstances, TEST_SECRET, wsClient, type Herald } from './helpers/herald.js';
import { spawnEntry, waitForOutput } from './helpers/processes.js';
import { openLiveStreams } from '../src/updates/live-stream.js';
import { connect, monitorCommands, redisUrl } from './helpers/redis.js';
import { freePort } from './helpers/redis-server.js';
import { errorCodes, waitFor } from './helpers/streams.js';

type PresenceEvent = PresenceChangedSubscription['presenceChanged'];

const PRESENCE = { PRESENCE_HEARTBEAT_MS: '200', PRESENCE_TTL_MS: '1000' };

const redis = connect();
const started: Herald[] = [];
const cleanups: Array<() => unknown> = [];
afterAll(async () => {
  for (const cleanup of cleanups) await cleanup();
  await Promise.all(started.map((h) => h.stop()));
  redis.disconnect();
});

async function instances(env: Record<string, string> = {}): Promise<[Herald, Herald]> {
  const apps = await startInstances(2, { ...PRESENCE, ...env });
  started.push(...apps);
  return apps;
}

/** Everything a subscription delivers, as it comes. */
function follow<T>(client: Client, query: DocumentNode, variables: object, field: string) {
  const seen: { items: T[]; errors: unknown[] } = { items: [], errors: [] };
  const stop = client.subscribe<Record<string, T>>(
    { query: print(query), variables: variables as Record<string, unknown> },
    {
      next: (value: ExecutionResult<Record<string, T>>) => {
        if (value.errors) seen.errors.push(...value.errors);
        const item = value.data?.[field];
        if (item) seen.items.push(item);
      },
      error: (error) => seen.errors.push(error),
      complete: () => undefined,
    },
  );
  cleanups.push(stop);
  return { ...seen, stop };
}

function watchPresence(client: Client, target: PresenceTarget) {
  return follow<PresenceEvent>(client, PresenceChangedDocument, { target }, 'presenceChanged');
}

const changes = (events: PresenceEvent[]) => events.map((event) => `${event.change} ${event.user?.id ?? ''}`.trim());

async function presentIds(h: Herald, token: string, target: PresenceTarget): Promise<string[]> {
  const { body } = await h.http(token, PresenceDocument, { target });
  expect(body.errors).toBeUndefined();
  return body.data!.presence.map((watcher) => watcher.id);
}

describe('presence in projects and resources', () => {
  it('shows who watches a project and a resource, and their joins and leaves, across instances', async () => {
    const [a, b] = await instances();
    const member = (sub: string) => a.token({ sub, projects: ['apollo'] });
    const [alice, bob, carol] = await Promise.all([member('alice'), member('bob'), member('carol')]);
    const project = { projectId: 'apollo' };
    const observer = watchPresence(a.ws(alice), project);
    await waitFor(() => observer.items.length === 1);
    expect(observer.items[0]).toMatchObject({ change: 'PRESENT', user: null, watchers: [] });

    // Bob watches the project through the other instance.
    const bobWatch = follow(b.ws(bob), ProjectProgressDocument, { projectId: 'apollo' }, 'projectProgress');
    await waitFor(() => changes(observer.items).includes('JOINED bob'));
    expect(await presentIds(a, alice, project)).toEqual(['bob']);
    expect(observer.items.at(-1)!.watchers.map((w) => w.id)).toEqual(['bob']);

    // Carol watches a file of the project: she is present on the file and in the project.
    const { body } = await a.http(carol, StartFileProcessingDocument, {
      input: { name: 'notes.md', content: 'Herald streams progress.', projectId: 'apollo' },
    });
    const fileId = body.data!.startFileProcessing.fileId;
    const file = { resourceId: fileId };
    const fileObserver = watchPresence(b.ws(alice), file);
    await waitFor(() => fileObserver.items.length === 1);
    follow(b.ws(carol), FileProgressDocument, { fileId }, 'fileProgress');
    await waitFor(() => changes(fileObserver.items).includes('JOINED carol'));
    await waitFor(() => changes(observer.items).includes('JOINED carol'));
    expect(await presentIds(a, alice, file)).toEqual(['carol']);
    expect(await presentIds(b, bob, project)).toEqual(['bob', 'carol']);
    const joined = observer.items.at(-1)!;
    expect(joined.watchers.map((w) => w.id)).toEqual(['bob', 'carol']);
    expect(Date.parse(joined.user!.since)).toBeLessThanOrEqual(Date.parse(joined.at));

    // A second subscription of Carol's, through the other instance, opens and closes: she stays, once.
    const again = follow(a.ws(carol), FileProgressDocument, { fileId }, 'fileProgress');
    await waitFor(() => again.items.length > 0);
    again.stop();
    // Bob closes his subscription: he leaves.
    bobWatch.stop();
    await waitFor(() => changes(observer.items).includes('LEFT bob'));
    expect(observer.items.at(-1)!.watchers.map((w) => w.id)).toEqual(['carol']);
    expect(await presentIds(b, alice, project)).toEqual(['carol']);
    expect(changes(observer.items)).toEqual(['PRESENT', 'JOINED bob', 'JOINED carol', 'LEFT bob']);
  });

  it("makes a SIGKILLed instance's watchers leave within PRESENCE_TTL_MS + PRESENCE_HEARTBEAT_MS", async () => {
    const [a] = await instances();
    const port = await freePort();
    const child = spawnEntry('src/main.ts', {
      REDIS_URL: redisUrl(),
      JWT_SECRET: TEST_SECRET,
      KEY_PREFIX: a.config.keyPrefix,
      PORT: String(port),
      HOST: '127.0.0.1',
      ...PRESENCE,
    });
    cleanups.push(() => child.stop());
    await waitForOutput(child, 'API ready');
    const erin = await a.token({ sub: 'erin', projects: ['gemini'] });
    const observer = watchPresence(a.ws(erin), { projectId: 'gemini' });
    const doomed = wsClient(`ws://127.0.0.1:${port}/graphql`, await a.token({ sub: 'dan', projects: ['gemini'] }));
    cleanups.push(() => doomed.dispose());
    follow(doomed, ProjectProgressDocument, { projectId: 'gemini' }, 'projectProgress');
    await waitFor(() => changes(observer.items).includes('JOINED dan'));

    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    const killedAt = Date.now();
    // Nothing ran on the killed instance: Dan is still counted until its TTL ends.
    expect(await presentIds(a, erin, { projectId: 'gemini' })).toEqual(['dan']);
    const bound = Number(PRESENCE.PRESENCE_TTL_MS) + Number(PRESENCE.PRESENCE_HEARTBEAT_MS);
    await waitFor(() => changes(observer.items).includes('LEFT dan'), bound + 2_000);
    expect(Date.now() - killedAt).toBeLessThan(bound + 500);
    expect(observer.items.at(-1)!.watchers).toEqual([]);
    expect(await presentIds(a, erin, { projectId: 'gemini' })).toEqual([]);
  });

  it("writes a user's presence in a room to Redis only for their first subscription there and when their last one ends", async () => {
    const [a] = await instances();
    const [kim, lev] = await Promise.all([
      a.token({ sub: 'kim', projects: ['soyuz'] }),
      a.token({ sub: 'lev', projects: ['soyuz'] }),
    ]);
    const { body } = await a.http(kim, StartFileProcessingDocument, {
      input: { name: 'plan.md', content: 'Three tabs, one presence.', projectId: 'soyuz' },
    });
    const fileId = body.data!.startFileProcessing.fileId;
    const file = { resourceId: fileId };
    const observer = watchPresence(a.ws(lev), file);
    await waitFor(() => observer.items.length === 1);

    const monitor = await monitorCommands();
    cleanups.push(() => monitor.stop());
    const prefix = `${a.config.keyPrefix}presence:`;
    /** The presence writes of rooms (room.lua runs, the instance's list of what it watches), one label each. */
    const roomWrites = () =>
      monitor.commands.flatMap(({ command, args }) => {
        const key = args.find((arg) => arg.startsWith(prefix) && (arg.includes('{room:') || arg.endsWith(':watching')));
        if (!key || /^(hgetall|get)$/.test(command)) return [];
        return [/^eval/.test(command) ? `room.lua ${/\{room:[^}]+\}/.exec(key)![0]}` : `${command} watching`];
      });
    const since = `${prefix}{room:resource:${fileId}}:since`;
    /** Reads the room through `a`, then waits for MONITOR to report it: by then it has reported everything `a` sent Redis before. */
    const sent = async () => {
      const reads = () => monitor.commands.filter(({ command, args }) => command === 'hgetall' && args[0] === since).length;
      const before = reads();
      await presentIds(a, lev, file);
      await waitFor(() => reads() > before);
    };
    const joins = ['hset watching', 'room.lua {room:project:soyuz}', `room.lua {room:resource:${fileId}}`];

    const tabs = a.ws(kim);
    const first = follow(tabs, FileProgressDocument, { fileId }, 'fileProgress');
    await waitFor(() => changes(observer.items).includes('JOINED kim'));
    await sent();
    expect([...new Set(roomWrites())].sort()).toEqual(joins);
    const written = roomWrites().length;

    // A second and a third subscription of Kim's to the same file on the same instance: nothing more.
    const streams = openLiveStreams();
    const more = [
      follow(tabs, FileProgressDocument, { fileId }, 'fileProgress'),
      follow(tabs, FileProgressDocument, { fileId }, 'fileProgress'),
    ];
    await waitFor(() => more.every((subscription) => subscription.items.length > 0));
    await sent();
    expect(roomWrites()).toHaveLength(written);
    for (const subscription of more) subscription.stop();
    await waitFor(() => openLiveStreams() === streams);
    await sent();
    expect(roomWrites()).toHaveLength(written);
    expect(changes(observer.items)).toEqual(['PRESENT', 'JOINED kim']);

    // The last one closes: Kim leaves, and Redis is written again.
    first.stop();
    await waitFor(() => changes(observer.items).includes('LEFT kim'));
    await sent();
    expect(changes(observer.items)).toEqual(['PRESENT', 'JOINED kim', 'LEFT kim']);
    expect([...new Set(roomWrites().slice(written))].sort()).toEqual(['hdel watching', ...joins.slice(1)]);
    expect(await presentIds(a, lev, file)).toEqual([]);
  });

  it('announces the rooms again, once each, when Redis has lost them', async () => {
    const [a] = await instances();
    const mia = await a.token({ sub: 'mia', projects: ['salyut'] });
    const { body } = await a.http(mia, StartFileProcessingDocument, { input: { name: 'log.md', content: 'Lost and found.' } });
    const fileId = body.data!.startFileProcessing.fileId;
    const file = { resourceId: fileId };
    const tabs = a.ws(mia);
    const watches = [0, 1].map(() => follow(tabs, FileProgressDocument, { fileId }, 'fileProgress'));
    await waitFor(async () => (await presentIds(a, mia, file)).length === 1);

    // Redis loses every presence key (a restart without persistence): the next heartbeat writes them again.
    await redis.del(await redis.keys(`${a.config.keyPrefix}presence:*`));
    await waitFor(async () => (await presentIds(a, mia, file)).length === 1);
    const entries = await redis.hgetall(`${a.config.keyPrefix}presence:{room:resource:${fileId}}:entries`);
    expect(Object.values(entries)).toEqual(['1']);

    for (const watch of watches) watch.stop();
    await waitFor(async () => (await presentIds(a, mia, file)).length === 0);
  });

  it('keeps each room in its own slot, and reads the room again rather than trust a change that skips one', async () => {
    const [a] = await instances();
    const hana = await a.token({ sub: 'hana', projects: ['vostok'] });
    const observer = watchPresence(a.ws(hana), { projectId: 'vostok' });
    await waitFor(() => observer.items.length === 1);
    const room = `${a.config.keyPrefix}presence:{room:project:vostok}`;
    // A message numbered past the next change: applied as it is, it would show a ghost.
    const ghost = { version: 5, change: 'JOINED', userId: 'ghost', since: Date.now(), at: Date.now() };
    await redis.publish(`${room}:changes`, JSON.stringify(ghost));
    follow(
      a.ws(await a.token({ sub: 'ivan', projects: ['vostok'] })),
      ProjectProgressDocument,
      { projectId: 'vostok' },
      'projectProgress',
    );
    await waitFor(() => changes(observer.items).includes('JOINED ivan'));
    expect(changes(observer.items)).toEqual(['PRESENT', 'JOINED ivan']);
    expect(observer.items.at(-1)!.watchers.map((w) => w.id)).toEqual(['ivan']);
    const keys = await redis.keys(`${a.config.keyPrefix}presence:*`);
    for (const key of keys) expect(key).toMatch(/presence:\{(room:project:vostok|instance:[^}]+|presence|user:[^}]+)\}/);
    expect(keys.filter((key) => key.startsWith(room)).length).toBeGreaterThan(0);
  });

  it('shows a project only to its members and admins, and a resource only to who may see it', async () => {
    const [a] = await instances();
    const [member, outsider, admin] = await Promise.all([
      a.token({ sub: 'fay', projects: ['apollo'] }),
      a.token({ sub: 'gil', projects: ['gemini'] }),
      a.token({ sub: 'root', roles: ['admin'] }),
    ]);
    const project = { projectId: 'apollo' };
    const refused = await a.http(outsider, PresenceDocument, { target: project });
    expect(errorCodes(refused.body.errors)).toEqual(['FORBIDDEN']);
    const subscription = watchPresence(a.ws(outsider), project);
    await waitFor(() => subscription.errors.length > 0);
    expect(errorCodes(subscription.errors)).toEqual(['FORBIDDEN']);
    expect(subscription.items).toEqual([]);
    expect((await a.http(admin, PresenceDocument, { target: project })).body.errors).toBeUndefined();

    const { body } = await a.http(member, StartFileProcessingDocument, { input: { name: 'private.md', content: 'Mine only.' } });
    const file = { resourceId: body.data!.startFileProcessing.fileId };
    expect(errorCodes((await a.http(outsider, PresenceDocument, { target: file })).body.errors)).toEqual(['FORBIDDEN']);
    expect(await presentIds(a, member, file)).toEqual([]);
    const unknown = await a.http(member, PresenceDocument, { target: { resourceId: 'no-such-file' } });
    expect(errorCodes(unknown.body.errors)).toEqual(['NOT_FOUND']);
    const both = await a.http(member, PresenceDocument, { target: { ...project, ...file } });
    expect(errorCodes(both.body.errors)).toEqual(['BAD_USER_INPUT']);
  });
});

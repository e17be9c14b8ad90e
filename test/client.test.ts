import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import {
  createHeraldClient,
  MeDocument,
  StartFileProcessingDocument,
  type ConnectionState,
  type FileUpdate,
  type HeraldClient,
  type HeraldClientOptions,
  type PresenceEvent,
} from '../src/client/index.js';
import { freePort } from '../src/dev/redis-server.js';
import { makeDocument } from './helpers/documents.js';
import { clientsFor, startHerald, type Herald } from './helpers/herald.js';
import { startCluster, type Cluster } from './helpers/processes.js';
import { waitFor } from './helpers/streams.js';

let cluster: Cluster<1, 1>;
let herald: Herald;
const clients: HeraldClient[] = [];

beforeAll(async () => {
  [cluster, herald] = await Promise.all([
    startCluster({ CHUNK_CHARS: '100', HISTORY_LIMIT: '5000' }, { apis: 1, workers: 1 }),
    startHerald({}, { workers: false }),
  ]);
}, 60_000);
afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.dispose()));
});
afterAll(async () => {
  await cluster?.stop();
  await herald?.stop();
});

/** A client of the API at `url` with quick reconnects, and every state it goes through. */
function connect(url: string, getToken: () => string | Promise<string>, options: Partial<HeraldClientOptions> = {}) {
  const client = createHeraldClient({
    url: clientsFor(url).wsUrl,
    getToken,
    webSocketImpl: WebSocket,
    backoff: { baseDelayMs: 100, maxDelayMs: 1_000 },
    ...options,
  });
  clients.push(client);
  const states: ConnectionState[] = [];
  client.onState((state) => states.push(state));
  return { client, states };
}

async function startFile(client: HeraldClient, sections: number) {
  return (await client.mutate(StartFileProcessingDocument, { input: { name: 'notes.md', content: makeDocument(sections) } }))
    .startFileProcessing;
}

function expectWholeStream(updates: FileUpdate[]) {
  expect(updates.map((u) => u.seq)).toEqual(updates.map((_, i) => i + 1));
  expect(updates.at(-1)).toMatchObject({ event: 'processing_completed', status: 'COMPLETED' });
}

/** ws's WebSocket, recording the `after` of every subscription it sends. */
function recordingAfters(afters: Array<string | null>) {
  return class extends WebSocket {
    override send(data: Parameters<WebSocket['send']>[0]) {
      const message = JSON.parse((data as Buffer).toString()) as {
        type: string;
        payload?: { variables?: { after?: string | null } };
      };
      const variables = message.payload?.variables;
      if (message.type === 'subscribe' && variables && 'after' in variables) afters.push(variables.after ?? null);
      super.send(data);
    }
  };
}

describe('herald/client', () => {
  it('resumes across an API process killed and restarted on the same port: every update once, in order', async () => {
    const token = await herald.token('kim');
    const afters: Array<string | null> = [];
    const { client, states } = connect(cluster.apiUrls[0], () => token, { webSocketImpl: recordingAfters(afters) });
    const { fileId, cursor } = await startFile(client, 400);

    const updates: FileUpdate[] = [];
    let statesAtKill = 0;
    for await (const update of client.fileProgress(fileId, cursor)) {
      updates.push(update);
      if (updates.length === 50) {
        statesAtKill = states.length;
        cluster.apis[0].kill('SIGKILL');
        await cluster.restartApi(0);
      }
    }

    expectWholeStream(updates);
    expect(updates.length).toBeGreaterThan(50);
    const since = states.slice(statesAtKill).map((s) => s.status);
    expect(since).toContain('reconnecting');
    expect(since.lastIndexOf('connected')).toBeGreaterThan(since.indexOf('reconnecting'));
    // The first subscribe starts from the job's cursor; the one after the restart from the last update delivered.
    expect(afters[0]).toBe(cursor);
    expect(afters).toHaveLength(2);
    expect(updates.findIndex((u) => u.cursor === afters[1])).toBeGreaterThanOrEqual(49);
  }, 60_000);

  it('renews an expired token through the provider and goes on with the stream, nothing twice', async () => {
    let issued = 0;
    const { client, states } = connect(herald.url, () => {
      issued += 1;
      return herald.token({ sub: 'tess', ttlSeconds: 2 });
    });
    const { fileId, cursor } = await startFile(client, 20);
    const updates: FileUpdate[] = [];
    const streaming = (async () => {
      for await (const update of client.fileProgress(fileId, cursor)) updates.push(update);
    })();
    // No worker yet: the subscription waits after `queued` while its tokens expire (4401) and are renewed.
    await waitFor(() => issued >= 3, 15_000);
    await herald.startWorkers();
    await streaming;

    expectWholeStream(updates);
    expect(updates[0]?.event).toBe('queued');
    expect(states.filter((s) => s.status === 'reconnecting' && s.closeCode === 4401).length).toBeGreaterThanOrEqual(2);
  }, 30_000);

  it('measures the round trip of its pings', async () => {
    const token = await herald.token('lea');
    const { client } = connect(herald.url, () => token, { keepAliveMs: 100 });
    const latencies: number[] = [];
    client.onLatency((ms) => latencies.push(ms));
    expect(client.latencyMs).toBeNull();
    expect((await client.query(MeDocument)).me.id).toBe('lea');
    await waitFor(() => latencies.length >= 2);
    expect(client.latencyMs).toBe(latencies.at(-1));
    for (const ms of latencies) expect(ms).toBeGreaterThanOrEqual(0);
    for (const ms of latencies) expect(ms).toBeLessThan(1_000);
  });

  it('hands a GraphQL error to the caller with its code, and does not reconnect for it', async () => {
    const owner = connect(herald.url, () => herald.token('olga')).client;
    const { fileId } = await startFile(owner, 1);
    const { client, states } = connect(herald.url, () => herald.token('mallory'));
    await expect(client.fileProgress(fileId).next()).rejects.toMatchObject({ name: 'HeraldError', code: 'FORBIDDEN' });
    await expect(client.fileProgress('no-such-file').next()).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(client.mutate(StartFileProcessingDocument, { input: { name: 'x.md', content: '' } })).rejects.toMatchObject({
      code: 'BAD_USER_INPUT',
    });
    expect(states.map((s) => s.status)).not.toContain('reconnecting');
  });

  it('fails a mutation whose socket closes rather than send it again, while a query waits for a server', async () => {
    const port = await freePort();
    const { client, states } = connect(`http://127.0.0.1:${port}`, () => herald.token('nina'));
    await expect(
      client.mutate(StartFileProcessingDocument, { input: { name: 'x.md', content: 'Hello.' } }),
    ).rejects.toMatchObject({
      code: 'CONNECTION_CLOSED',
      closeCode: 1006,
    });
    const seen = states.length;
    const answer = client.query(MeDocument);
    await waitFor(() => states.slice(seen).filter((s) => s.status === 'reconnecting').length >= 2);
    const late = await startHerald({ PORT: String(port) }, { workers: false });
    try {
      expect((await answer).me.id).toBe('nina');
    } finally {
      await late.stop();
    }
  });

  it("follows a project's presence: who is there, then who joins and leaves", async () => {
    const member = (sub: string) => () => herald.token({ sub, projects: ['orion'] });
    const observer = connect(herald.url, member('uma')).client;
    const events: PresenceEvent[] = [];
    const following = (async () => {
      for await (const event of observer.presenceChanged({ projectId: 'orion' })) {
        events.push(event);
        if (event.change === 'LEFT') return;
      }
    })();
    await waitFor(() => events.length === 1);
    expect(events[0]).toMatchObject({ change: 'PRESENT', user: null, watchers: [] });

    const watcher = connect(herald.url, member('vic')).client;
    const watching = watcher.projectProgress('orion')[Symbol.asyncIterator]();
    // Subscribed (and so present) from the first next(); disposing ends it either way.
    void watching.next().catch(() => undefined);
    await waitFor(() => events.length === 2);
    expect(events[1]).toMatchObject({ change: 'JOINED', user: { id: 'vic' } });
    expect(events[1]!.watchers.map((w) => w.id)).toEqual(['vic']);

    await watcher.dispose();
    await following;
    expect(events.map((e) => `${e.change} ${e.user?.id ?? ''}`.trim())).toEqual(['PRESENT', 'JOINED vic', 'LEFT vic']);
    expect(events[2]!.watchers).toEqual([]);
  });

  it('gives up with UNAUTHENTICATED when the fresh token the provider hands over is refused too', async () => {
    let issued = 0;
    const { client } = connect(herald.url, () => {
      issued += 1;
      return 'not-a-jwt';
    });
    await expect(client.query(MeDocument)).rejects.toMatchObject({ code: 'UNAUTHENTICATED', closeCode: 4401 });
    expect(issued).toBe(2);
  });
});

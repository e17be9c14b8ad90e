/**
 * S10: what Redis does per update on one node and on a Cluster of three primaries with sharded
 * pub/sub. Herald's own append path (src/updates/store.ts, batching what queues behind a call in
 * flight) appends to `streams` streams, and Herald's hub (src/updates/hub.ts) subscribes to every
 * stream's channel, as an API instance whose clients watch them all does. Reported per layout:
 * updates/s, Redis CPU per update summed over the nodes, and per node its share of the appends and
 * of the pub/sub messages. On one machine the total is bounded by its cores; what shows whether
 * Cluster spreads the work is the per-node share (about a third each) and the summed CPU.
 */
import { execFileSync } from 'node:child_process';
import type { RedisSettings } from '../src/config.js';
import { startRedisServer, type RedisServer } from '../src/dev/redis-server.js';
import { createRedis, type Redis } from '../src/redis.js';
import { createUpdateHub } from '../src/updates/hub.js';
import { resourceStream } from '../src/updates/keys.js';
import { createUpdateStore } from '../src/updates/store.js';

export interface ClusterParams {
  streams: number;
  updates: number;
  /** Appends in flight at once (the store batches those that queue behind a call). */
  window: number;
}

export interface NodeShare {
  port: number;
  /** Script calls (append batches) this node ran, and the updates' share it stored. */
  scriptCalls: number;
  /** PUBLISH or SPUBLISH calls: one per update, on the node that owns its stream. */
  publishes: number;
  cpuMs: number;
}

export interface ClusterRun {
  layout: 'one node' | 'three primaries';
  updates: number;
  seconds: number;
  updatesPerSecond: number;
  /** used_cpu_sys + used_cpu_user over the run, summed over the nodes, per update. */
  redisCpuUsPerUpdate: number;
  /** Updates the hub got, each once and in order per stream, out of `updates`. */
  delivered: number;
  outOfOrder: number;
  /** PUBLISH calls on any node in Cluster mode: 0 when every message is a shard message. */
  plainPublishes: number;
  nodes: NodeShare[];
}

const KEY_PREFIX = 's10:';

interface NodeFigures {
  cpuMs: number;
  calls: Map<string, number>;
}

/** Asks one node on a connection of its own: the bench's questions stay out of the measured connections' traffic. */
async function askNode<T>(url: string, question: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = createRedis({ mode: 'single', url, tls: null }, 'commands');
  try {
    return await question(redis);
  } finally {
    redis.disconnect();
  }
}

async function figures(url: string): Promise<NodeFigures> {
  const [cpu, stats] = await askNode(url, (redis) => Promise.all([redis.info('cpu'), redis.info('commandstats')]));
  const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(cpu)?.[1] ?? 0);
  const calls = new Map([...stats.matchAll(/^cmdstat_([\w|]+):calls=(\d+)/gm)].map(([, name, count]) => [name!, Number(count)]));
  return { cpuMs: (field('used_cpu_sys') + field('used_cpu_user')) * 1000, calls };
}

const callsOf = (f: NodeFigures, ...names: string[]) => names.reduce((sum, name) => sum + (f.calls.get(name) ?? 0), 0);

async function startLayout(layout: ClusterRun['layout']): Promise<{ servers: RedisServer[]; settings: RedisSettings }> {
  if (layout === 'one node') {
    const server = await startRedisServer();
    return { servers: [server], settings: { mode: 'single', url: server.url, tls: null } };
  }
  const servers = await Promise.all([0, 1, 2].map(() => startRedisServer({ extraArgs: ['--cluster-enabled', 'yes'] })));
  const addresses = servers.map((server) => `127.0.0.1:${server.port}`);
  execFileSync('redis-cli', ['--cluster', 'create', ...addresses, '--cluster-yes'], { stdio: 'ignore' });
  for (;;) {
    const states = await Promise.all(servers.map(async (server) => (await clusterInfo(server.url)).includes('cluster_state:ok')));
    if (states.every(Boolean)) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const nodes = servers.map((server) => ({ host: '127.0.0.1', port: server.port }));
  return { servers, settings: { mode: 'cluster', nodes, failoverWaitMs: 20_000, tls: null } };
}

function clusterInfo(url: string): Promise<string> {
  return askNode(url, async (redis) => String(await redis.call('CLUSTER', 'INFO')));
}

async function runLayout(layout: ClusterRun['layout'], params: ClusterParams): Promise<ClusterRun> {
  const { servers, settings } = await startLayout(layout);
  const connections: Redis[] = [];
  try {
    const commands = createRedis(settings, 'commands');
    const subscriber = createRedis(settings, 'subscriber');
    connections.push(commands, subscriber);
    const store = createUpdateStore(commands, { keyPrefix: KEY_PREFIX, historyLimit: 100, ttlSeconds: 3600 });
    const hub = createUpdateHub(subscriber);
    const refs = Array.from({ length: params.streams }, (_, i) => ({ kind: 'file' as const, id: `s10-${i}` }));
    const lastSeq = new Map<string, number>();
    let delivered = 0;
    let outOfOrder = 0;
    await Promise.all(
      refs.map((ref) =>
        hub.subscribe(resourceStream(KEY_PREFIX, ref).channel, {
          onMessage(message) {
            const seq = (message as { seq: number }).seq;
            if (seq !== (lastSeq.get(ref.id) ?? 0) + 1) outOfOrder += 1;
            lastSeq.set(ref.id, seq);
            delivered += 1;
          },
        }),
      ),
    );
    const before = await Promise.all(servers.map((server) => figures(server.url)));
    const started = performance.now();
    let next = 0;
    const worker = async () => {
      while (next < params.updates) {
        const i = next++;
        await store.append(refs[i % refs.length]!, { event: 'step', status: 'PROCESSING', progress: i % 100 });
      }
    };
    await Promise.all(Array.from({ length: params.window }, worker));
    const seconds = (performance.now() - started) / 1000;
    const waitUntil = Date.now() + 10_000;
    while (delivered < params.updates && Date.now() < waitUntil) await new Promise((resolve) => setTimeout(resolve, 20));
    const after = await Promise.all(servers.map((server) => figures(server.url)));
    const nodes = servers.map((server, i) => ({
      port: server.port,
      scriptCalls: callsOf(after[i]!, 'evalsha', 'eval') - callsOf(before[i]!, 'evalsha', 'eval'),
      publishes: callsOf(after[i]!, 'publish', 'spublish') - callsOf(before[i]!, 'publish', 'spublish'),
      cpuMs: after[i]!.cpuMs - before[i]!.cpuMs,
    }));
    const cpuMs = nodes.reduce((sum, node) => sum + node.cpuMs, 0);
    const plainPublishes =
      settings.mode === 'cluster'
        ? after.reduce((sum, f, i) => sum + callsOf(f, 'publish') - callsOf(before[i]!, 'publish'), 0)
        : 0;
    return {
      layout,
      updates: params.updates,
      seconds,
      updatesPerSecond: Math.round(params.updates / seconds),
      redisCpuUsPerUpdate: (cpuMs * 1000) / params.updates,
      delivered,
      outOfOrder,
      plainPublishes,
      nodes,
    };
  } finally {
    for (const connection of connections) connection.disconnect();
    await Promise.all(servers.map((server) => server.stop()));
  }
}

/** Runs S10 on one node, then on three primaries. */
export async function clusterScaling(params: ClusterParams, log: (line: string) => void): Promise<ClusterRun[]> {
  const runs: ClusterRun[] = [];
  for (const layout of ['one node', 'three primaries'] as const) {
    const run = await runLayout(layout, params);
    log(
      `S10 ${layout}: ${run.updatesPerSecond} updates/s, ${run.redisCpuUsPerUpdate.toFixed(1)} µs Redis CPU per update, ` +
        `${run.delivered}/${run.updates} delivered, publishes per node ${run.nodes.map((n) => n.publishes).join(' / ')}`,
    );
    runs.push(run);
  }
  return runs;
}

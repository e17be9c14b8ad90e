import { execFile } from 'node:child_process';
import { once } from 'node:events';
import type { Redis } from 'ioredis';
import { startRedisServer, type RedisServer, type RedisServerOptions } from '../../src/dev/redis-server.js';
import { nth } from './elements.js';
import { connect } from './redis.js';
import { waitFor } from './streams.js';

export { freePort, startRedisServer, type RedisServer } from '../../src/dev/redis-server.js';

/**
 * Redis HA as docs/redis-ha.md recommends it, on loopback: a primary, two replicas and three
 * sentinels (quorum 2), every data node with `min-replicas-to-write 1`, so whichever is primary
 * refuses writes when cut off from both replicas, and a failover still leaves it one.
 */
export interface SentinelGroup {
  primary: RedisServer;
  replicas: RedisServer[];
  /** What points Herald at the group: REDIS_SENTINELS and REDIS_SENTINEL_MASTER. */
  env: Record<string, string>;
  /** The port of the server the sentinels name as primary right now. */
  primaryPort(): Promise<number>;
  /** Stops every server still running, and removes their folders. */
  stop(): Promise<void>;
}

export interface SentinelGroupOptions {
  /** How long a primary must be silent before the sentinels call it down. */
  downAfterMs: number;
  failoverTimeoutMs: number;
}

async function ask<T>(url: string, command: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = connect(url);
  try {
    return await command(redis);
  } finally {
    redis.disconnect();
  }
}

/**
 * Starts the group and resolves once every replica is in sync and every sentinel knows the other
 * two and every replica, so a failover can start the moment the primary dies. Sentinels learn of
 * replicas from the primary's INFO, which they read at start and then only every 10 s: the
 * replicas must be in sync before the sentinels start.
 */
export async function startSentinelGroup(options: SentinelGroupOptions): Promise<SentinelGroup> {
  const masterName = 'herald';
  const servers: RedisServer[] = [];
  const start = async (serverOptions: RedisServerOptions) => {
    const server = await startRedisServer(serverOptions);
    servers.push(server);
    return server;
  };
  const stop = async () => {
    await Promise.all(servers.map((server) => server.stop()));
  };
  try {
    // A replica that becomes primary must sync its new replicas at once, not after the default 5 s.
    const dataArgs = ['--repl-diskless-sync-delay', '0', '--min-replicas-to-write', '1', '--min-replicas-max-lag', '10'];
    const primary = await start({ extraArgs: dataArgs });
    const replicas = await Promise.all(
      Array.from({ length: 2 }, () => start({ extraArgs: [...dataArgs, '--replicaof', '127.0.0.1', String(primary.port)] })),
    );
    await waitFor(async () => {
      const infos = await Promise.all(replicas.map((replica) => ask(replica.url, (redis) => redis.info('replication'))));
      return infos.every((info) => info.includes('master_link_status:up'));
    }, 10_000);

    const sentinels = await Promise.all(
      Array.from({ length: 3 }, () =>
        start({
          sentinel: [
            `sentinel monitor ${masterName} 127.0.0.1 ${primary.port} 2`,
            `sentinel down-after-milliseconds ${masterName} ${options.downAfterMs}`,
            `sentinel failover-timeout ${masterName} ${options.failoverTimeoutMs}`,
          ],
        }),
      ),
    );
    await waitFor(async () => {
      const known = await Promise.all(
        sentinels.map((sentinel) =>
          ask(sentinel.url, async (redis) => {
            const others = (await redis.call('SENTINEL', 'SENTINELS', masterName)) as unknown[];
            const replicasSeen = (await redis.call('SENTINEL', 'REPLICAS', masterName)) as unknown[];
            return others.length === 2 && replicasSeen.length === replicas.length;
          }),
        ),
      );
      return known.every(Boolean);
    }, 15_000);

    return {
      primary,
      replicas,
      env: {
        REDIS_SENTINELS: sentinels.map((sentinel) => `127.0.0.1:${sentinel.port}`).join(','),
        REDIS_SENTINEL_MASTER: masterName,
      },
      async primaryPort() {
        const [, port] = (await ask(nth(sentinels, 0).url, (redis) =>
          redis.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', masterName),
        )) as string[];
        return Number(port);
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * A Redis Cluster on loopback as production runs one: three primaries, each with its replicas,
 * formed by `redis-cli --cluster create`. Every server is a child of this process, stopped by `stop()`.
 */
export interface RedisClusterGroup {
  servers: RedisServer[];
  /** What points Herald at the cluster: REDIS_CLUSTER_NODES. */
  env: Record<string, string>;
  /** The server that is primary of `slot` now, and its replicas, as the cluster itself reports. */
  shardOf(slot: number): Promise<{ primary: RedisServer; replicas: RedisServer[] }>;
  /**
   * Resolves with `slot`'s primary once it has a replica in sync, as a `WAIT` needs to be
   * confirmed: after a failover, once a surviving replica has re-attached to the promoted one.
   */
  replicatedPrimary(slot: number, timeoutMs: number): Promise<RedisServer>;
  /** Moves `slot` and its keys to another primary, as `redis-cli --cluster reshard` does; resolves with that primary. */
  moveSlot(slot: number): Promise<RedisServer>;
  /**
   * Freezes `server` (SIGSTOP): its connections stay open and silent, as a hung or cut-off node's
   * do. The group asks it nothing more, and kills it in `stop()` (a stopped process ignores SIGTERM).
   */
  freeze(server: RedisServer): void;
  /** Kills `server` (SIGKILL) and resolves once it has exited. */
  kill(server: RedisServer): Promise<void>;
  stop(): Promise<void>;
}

interface ClusterShardReply {
  slots: number[];
  nodes: Array<{ port: number; role: string; health: string }>;
}

/** CLUSTER SHARDS answers flat [name, value, ...] lists; this reads the parts a test needs. */
function readShards(reply: unknown[]): ClusterShardReply[] {
  const record = (list: unknown[]) => {
    const fields = new Map<string, unknown>();
    for (let i = 0; i + 1 < list.length; i += 2) fields.set(String(list[i]), list[i + 1]);
    return fields;
  };
  return reply.map((shard) => {
    const fields = record(shard as unknown[]);
    const nodes = (fields.get('nodes') as unknown[][]).map(record);
    return {
      slots: (fields.get('slots') as unknown[]).map(Number),
      nodes: nodes.map((node) => ({
        port: Number(node.get('port')),
        role: String(node.get('role')),
        health: String(node.get('health')),
      })),
    };
  });
}

export interface RedisClusterOptions {
  /** How long a silent primary takes to be failed over. */
  nodeTimeoutMs: number;
  /**
   * Replicas of each primary (default 1). With 2, a primary that fails over still leaves its
   * successor a replica, which `APPEND_WAIT_REPLICAS=1` needs to go on acknowledging appends.
   */
  replicasPerPrimary?: number;
}

/**
 * Starts three primaries and their replicas, cluster-enabled, and forms the cluster; resolves once
 * every node reports `cluster_state:ok` and knows all the others, and every replica is in sync, so
 * a failover can start at once.
 */
export async function startRedisCluster(options: RedisClusterOptions): Promise<RedisClusterGroup> {
  const { nodeTimeoutMs, replicasPerPrimary = 1 } = options;
  const size = 3 * (1 + replicasPerPrimary);
  const servers: RedisServer[] = [];
  const frozen = new Set<RedisServer>();
  const running = (server: RedisServer) => server.process.exitCode === null && server.process.signalCode === null;
  const kill = async (server: RedisServer) => {
    if (!running(server)) return;
    const exited = once(server.process, 'exit');
    server.process.kill('SIGKILL');
    await exited;
  };
  const stop = async () => {
    await Promise.all([...frozen].map(kill));
    await Promise.all(servers.map((server) => server.stop()));
  };
  try {
    const args = ['--cluster-enabled', 'yes', '--cluster-node-timeout', String(nodeTimeoutMs), '--repl-diskless-sync-delay', '0'];
    servers.push(...(await Promise.all(Array.from({ length: size }, () => startRedisServer({ extraArgs: args })))));
    const addresses = servers.map((server) => `127.0.0.1:${server.port}`);
    await new Promise<void>((resolve, reject) => {
      execFile(
        'redis-cli',
        ['--cluster', 'create', ...addresses, '--cluster-replicas', String(replicasPerPrimary), '--cluster-yes'],
        (error, stdout) =>
          error ? reject(new Error(`redis-cli --cluster create failed: ${error.message}\n${stdout}`)) : resolve(),
      );
    });
    // Every node also sees the three primaries as the only ones: until gossip has told it which
    // nodes became replicas, its CLUSTER SHARDS can name a replica as primary.
    const primariesSeen = (nodes: string) =>
      nodes.split('\n').filter((line) => line.split(' ')[2]?.split(',').includes('master')).length;
    await waitFor(async () => {
      const views = await Promise.all(
        servers.map((server) =>
          ask(server.url, async (redis) => ({
            info: `${await redis.cluster('INFO')}${await redis.info('replication')}`,
            primaries: primariesSeen(String(await redis.cluster('NODES'))),
          })),
        ),
      );
      return views.every(
        ({ info, primaries }) =>
          info.includes('cluster_state:ok') &&
          info.includes(`cluster_known_nodes:${size}`) &&
          (info.includes('role:master') || info.includes('master_link_status:up')) &&
          primaries === 3,
      );
    }, 20_000);
    const byPort = (port: number) => servers.find((server) => server.port === port);
    const shards = async () => {
      const live = servers.filter((server) => running(server) && !frozen.has(server));
      return readShards((await ask(nth(live, 0).url, (redis) => redis.call('CLUSTER', 'SHARDS'))) as unknown[]);
    };
    const onlinePrimary = (shard: ClusterShardReply) => {
      const node = shard.nodes.find(({ role, health }) => role === 'master' && health === 'online');
      return node && byPort(node.port);
    };
    const group: RedisClusterGroup = {
      servers,
      env: { REDIS_CLUSTER_NODES: addresses.join(',') },
      async shardOf(slot) {
        const shard = (await shards()).find(({ slots }) => {
          for (let i = 0; i + 1 < slots.length; i += 2) if (slot >= slots[i]! && slot <= slots[i + 1]!) return true;
          return false;
        });
        const server = shard && onlinePrimary(shard);
        if (!shard || !server) throw new Error(`no online primary for slot ${slot}`);
        const replicas = shard.nodes.filter((node) => node.role === 'replica').flatMap((node) => byPort(node.port) ?? []);
        return { primary: server, replicas };
      },
      async replicatedPrimary(slot, timeoutMs) {
        let replicated: RedisServer | undefined;
        await waitFor(async () => {
          const primary = await group.shardOf(slot).then(
            (shard) => shard.primary,
            () => undefined,
          );
          // A killed primary can still be reported online until the others call it failed.
          if (!primary || !running(primary) || frozen.has(primary)) return false;
          const info = await ask(primary.url, (redis) => redis.info('replication'));
          if (info.includes('role:master') && /^slave\d+:.*state=online/m.test(info)) replicated = primary;
          return replicated !== undefined;
        }, timeoutMs);
        return replicated!;
      },
      async moveSlot(slot) {
        const { primary: source } = await group.shardOf(slot);
        const target = (await shards()).map(onlinePrimary).find((server) => server && server !== source);
        if (!target) throw new Error('no other primary to move the slot to');
        const [sourceId, targetId] = await Promise.all(
          [source, target].map((server) => ask(server.url, (redis) => redis.call('CLUSTER', 'MYID') as Promise<string>)),
        );
        await ask(target.url, (redis) => redis.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', sourceId!));
        await ask(source.url, async (redis) => {
          await redis.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', targetId!);
          for (;;) {
            const keys = (await redis.call('CLUSTER', 'GETKEYSINSLOT', slot, 100)) as string[];
            if (keys.length === 0) break;
            await redis.call('MIGRATE', '127.0.0.1', target.port, '', 0, 5_000, 'KEYS', ...keys);
          }
        });
        for (const server of [target, source])
          await ask(server.url, (redis) => redis.call('CLUSTER', 'SETSLOT', slot, 'NODE', targetId!));
        return target;
      },
      freeze(server) {
        frozen.add(server);
        server.process.kill('SIGSTOP');
      },
      kill,
      stop,
    };
    return group;
  } catch (error) {
    await stop();
    throw error;
  }
}

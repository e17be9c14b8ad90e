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

import { readFileSync } from 'node:fs';
import calculateSlot from 'cluster-key-slot';
import type { ConnectionOptions } from 'node:tls';
import { Cluster, Redis, type ChainableCommander, type RedisOptions } from 'ioredis';
import type { RedisAddress, RedisSettings, RedisTls } from './config.js';
import type { Logger } from './logger.js';

/** What a connection is for: subscribers and BullMQ must never time out a blocked command. */
export type RedisRole = 'commands' | 'subscriber' | 'bullmq';

/**
 * Reconnect delay, doubling up to 2 s and never giving up: a Redis restart or failover is an
 * ordinary event that every process must ride out.
 */
const backoff = (attempt: number) => Math.min(50 * 2 ** Math.min(attempt, 10), 2_000);

/**
 * A write that reached a primary just demoted to replica (READONLY) is re-sent after reconnecting,
 * which asks Sentinel (or DNS) for the primary again; it was refused, so re-sending cannot double it.
 */
const reconnectOnError = (error: Error) => (error.message.startsWith('READONLY') ? 2 : false);

/**
 * How often a Cluster connection asks for the slot map. ioredis asks only when a command is
 * redirected or a connection closes; a primary that froze or was cut off by the network closes
 * nothing, and until the map shows its replica promoted, its shard's subscriber hears nothing and
 * commands to its slots wait. One CLUSTER SLOTS per connection every 2 s bounds that.
 */
const CLUSTER_SLOTS_REFRESH_MS = 2_000;

/**
 * While a primary fails over, ioredis' Cluster retries a command that met CLUSTERDOWN, TRYAGAIN or
 * its node's closed connection after this delay, refreshing the slot map each time, up to its
 * `maxRedirections`. Its defaults give up after 16 × 100 ms, before a replica is promoted (about
 * cluster-node-timeout plus a second): a job's append then failed and cost the job an attempt.
 * Herald retries for REDIS_FAILOVER_WAIT_MS instead; a retried append carries the same append id,
 * so it is stored once however many times it is sent.
 */
const CLUSTER_RETRY_DELAY_MS = 200;

/**
 * `disableClientInfo`: ioredis 5.8+ sends CLIENT SETINFO during its handshake, and a SUBSCRIBE
 * issued while connecting can then slip in before the ready check's INFO, which Redis refuses in
 * subscriber mode (redis/ioredis#2037); the failed check drops the connection and its messages.
 */
function roleOptions(role: RedisRole): Pick<RedisOptions, 'connectionName' | 'maxRetriesPerRequest' | 'disableClientInfo'> {
  return { connectionName: `herald-${role}`, maxRetriesPerRequest: role === 'commands' ? 20 : null, disableClientInfo: true };
}

/**
 * Herald's stores are typed against ioredis' `Redis`; a `Cluster` answers the same commands,
 * MULTI, scripts, pub/sub and status events they use (every multi-key step keeps its keys in one
 * hash-tag slot), so it stands in for one.
 */
function asRedis(cluster: Cluster): Redis {
  return cluster as unknown as Redis;
}

/**
 * TLS options for ioredis, or undefined for plain TCP. The undefined fields are dropped so that
 * Node's defaults (the system's CAs, no client certificate) apply.
 */
function tlsOptions(tls: RedisTls | null): ConnectionOptions | undefined {
  if (!tls) return undefined;
  return Object.fromEntries(Object.entries(tls).filter(([, value]) => value !== undefined));
}

function connect(settings: RedisSettings, role: RedisRole): Redis {
  const tls = tlsOptions(settings.tls);
  const options: RedisOptions = { ...roleOptions(role), retryStrategy: backoff, reconnectOnError, enableReadyCheck: true, tls };
  switch (settings.mode) {
    case 'single':
      return new Redis(settings.url, options);
    case 'sentinel':
      // The ready check also checks the role, so a stale answer from a sentinel never leaves us on a
      // replica; failoverDetector drops the connection as soon as a sentinel announces a new
      // primary, instead of waiting for the old one to fail a command.
      return new Redis({
        ...options,
        sentinels: settings.sentinels,
        name: settings.masterName,
        password: settings.password,
        sentinelPassword: settings.sentinelPassword,
        sentinelRetryStrategy: backoff,
        failoverDetector: true,
        // With TLS, the sentinels speak it too, trusting the same CA.
        enableTLSForSentinelMode: tls !== undefined,
        sentinelTLS: tls,
      });
    case 'cluster':
      // The subscriber subscribes to shard channels (SSUBSCRIBE) with one connection per primary,
      // which ioredis opens, routes by slot and moves when the slots move.
      //
      // No ready check: ioredis' Cluster asks a random primary for CLUSTER INFO with no timeout, and
      // starts its periodic slot map refresh only once that answers. A process that connected (or
      // reconnected) while a primary was frozen or silently cut off waited on it for good, even
      // after its replica took over. Without it, a command that meets CLUSTERDOWN is retried
      // (retryDelayOnClusterDown) like any other during a failover.
      return asRedis(
        new Cluster(settings.nodes, {
          clusterRetryStrategy: backoff,
          enableReadyCheck: false,
          slotsRefreshInterval: CLUSTER_SLOTS_REFRESH_MS,
          retryDelayOnFailover: CLUSTER_RETRY_DELAY_MS,
          retryDelayOnClusterDown: CLUSTER_RETRY_DELAY_MS,
          retryDelayOnTryAgain: CLUSTER_RETRY_DELAY_MS,
          maxRedirections: Math.max(16, Math.ceil(settings.failoverWaitMs / CLUSTER_RETRY_DELAY_MS)),
          shardedSubscribers: role === 'subscriber',
          // lazyConnect is read by the shard subscribers alone (ioredis connects to nodes lazily
          // whatever it says): the subscriber's connect to every primary at once, so a
          // resubscription after a slot map change finds them ready instead of queuing a 'ready'
          // listener per slot (and Node's "possible EventEmitter memory leak" warning past ten).
          redisOptions: { ...roleOptions(role), password: settings.password, tls, lazyConnect: role !== 'subscriber' },
        }),
      );
  }
}

/** Creates one Redis connection and logs each new error once, not on every retry. */
export function createRedis(settings: RedisSettings, role: RedisRole, logger?: Logger): Redis {
  const redis = connect(settings, role);
  let lastError = '';
  redis.on('error', (err: Error) => {
    if (err.message !== lastError) logger?.warn({ role, err: err.message }, 'redis connection error');
    lastError = err.message;
  });
  redis.on('ready', () => {
    lastError = '';
  });
  return redis;
}
export type { Redis };

/** Where a process's Redis is, for logs and the dev banner: never the password. */
export function describeRedis(settings: RedisSettings): string {
  const list = (addresses: RedisAddress[]) => addresses.map((a) => `${a.host}:${a.port}`).join(',');
  switch (settings.mode) {
    case 'single': {
      const url = new URL(settings.url);
      if (url.password) url.password = '***';
      return url.toString();
    }
    case 'sentinel':
      return `Sentinel primary "${settings.masterName}" via ${list(settings.sentinels)}`;
    case 'cluster':
      return `Cluster via ${list(settings.nodes)}`;
  }
}

/**
 * The three connections every Herald process needs, all to the Redis the settings name (one
 * server, a Sentinel-monitored primary, or a Cluster); a subscriber can run no other command.
 */
export function createRedisConnections(settings: RedisSettings, logger?: Logger) {
  const connections = {
    commands: createRedis(settings, 'commands', logger),
    subscriber: createRedis(settings, 'subscriber', logger),
    bullmq: createRedis(settings, 'bullmq', logger),
  };
  return {
    ...connections,
    disconnect(): void {
      for (const connection of Object.values(connections)) connection.disconnect();
    },
  };
}

/**
 * The values of a MULTI's commands, in order. ioredis resolves `exec()` even when a command in it
 * failed, handing the error back beside the others' values, so this throws the first such error
 * (and a discarded transaction) instead of letting a caller that only awaits `exec()` miss it.
 */
export async function execChecked(transaction: ChainableCommander): Promise<unknown[]> {
  const results = await transaction.exec();
  if (!results) throw new Error('Redis discarded the transaction');
  for (const [error] of results) if (error) throw error;
  return results.map(([, value]) => value);
}

/**
 * How `connection` publishes: on a Redis Cluster a shard channel (SPUBLISH; its name carries a hash
 * tag, so the message goes to that slot's shard only instead of every node), elsewhere PUBLISH.
 */
export function publishCommand(connection: Redis): 'SPUBLISH' | 'PUBLISH' {
  return connection.isCluster ? 'SPUBLISH' : 'PUBLISH';
}

/**
 * On a Redis Cluster, the primary (`host:port`) that serves `key`'s slot as far as `connection`
 * knows; null outside a Cluster or before it has the slot map. It may be out of date: a command
 * routed by it must cope with the slot having moved.
 */
export function slotPrimary(connection: Redis, key: string): string | null {
  if (!connection.isCluster) return null;
  return (connection as unknown as Cluster).slots[calculateSlot(key)]?.[0] ?? null;
}

/** Publishes `message` as the hub subscribed to it: see {@link publishCommand}. */
export async function publish(connection: Redis, channel: string, message: string): Promise<void> {
  await (connection.isCluster ? connection.spublish(channel, message) : connection.publish(channel, message));
}

/** A Lua script defined as a command: the number of keys, the keys, then the arguments. */
export type ScriptCommand<Reply> = (numberOfKeys: number, ...keysAndArgs: string[]) => Promise<Reply>;

/**
 * A Lua script shipped as a file beside its module (`new URL('./append.lua', import.meta.url)`),
 * so that producers in other languages load the very same script.
 */
export function readScript(url: URL): string {
  return readFileSync(url, 'utf8');
}

/**
 * The script as a command of `connection`: ioredis sends it by SHA and loads it when Redis does
 * not know it; defined once per connection however many stores share the connection.
 */
export function defineScript<Reply>(connection: Redis, name: string, lua: string): ScriptCommand<Reply> {
  if (!(name in connection)) connection.defineCommand(name, { lua });
  return scriptCommand(connection, name);
}

/** The script command `name` that defineScript defined on `connection`. */
function scriptCommand<Reply>(connection: Redis, name: string): ScriptCommand<Reply> {
  const command = (connection as unknown as Record<string, ScriptCommand<Reply> | undefined>)[name];
  if (!command) throw new Error(`ioredis did not define the script command ${name}`);
  return command.bind(connection);
}

/**
 * Errors with which a Cluster node refuses a keyed command unrun: the slot is elsewhere (MOVED,
 * ASK) or its shard is failing over (TRYAGAIN, CLUSTERDOWN).
 */
const REROUTED = /^(MOVED|ASK|TRYAGAIN|CLUSTERDOWN) /;

/**
 * Runs the script command `name` (see defineScript) and then `WAIT replicas timeoutMs` in one
 * pipeline, so the WAIT goes right after it to the node that ran it (in a Cluster, the primary of
 * its keys' slot). Resolves with the script's reply and the number of replicas that acknowledged
 * every write of the connection so far (0 when the connection closed while WAIT waited); rejects
 * with the script's error.
 *
 * In a Cluster, ioredis follows a redirection or waits out a failover for a pipeline only when
 * every command in it met the same error, and the keyless WAIT never does: after a failover or a
 * slot move, a connection whose slot map is stale got MOVED back and the append failed. Then the
 * script, refused unrun, is sent alone, which ioredis routes, redirects and retries (correcting its
 * slot map), and the pipeline once more, to the right node: the script must be safe to run twice,
 * as the append script is (its append ids).
 */
export async function scriptThenWait<Reply>(
  connection: Redis,
  name: string,
  call: [numberOfKeys: number, ...keysAndArgs: string[]],
  replicas: number,
  timeoutMs: number,
): Promise<[reply: Reply, acknowledged: number]> {
  const send = async () => {
    const pipeline = connection.pipeline() as ChainableCommander &
      Partial<Record<string, (numberOfKeys: number, ...keysAndArgs: string[]) => ChainableCommander>>;
    const script = pipeline[name];
    if (!script) throw new Error(`ioredis did not define the script command ${name}`);
    const [ran, waited] = (await script.apply(pipeline, call).wait(replicas, timeoutMs).exec()) ?? [];
    if (!ran || !waited) throw new Error('Redis discarded the pipeline');
    if (ran[0]) throw ran[0];
    // The script ran, then its node's connection closed while WAIT waited (the primary died):
    // ioredis aborts the rest of a pipeline so cut. No replica is known to have confirmed it.
    if (waited[0]?.name === 'AbortError') return [ran[1] as Reply, 0] as [Reply, number];
    if (waited[0]) throw waited[0];
    return [ran[1] as Reply, Number(waited[1])] as [Reply, number];
  };
  try {
    return await send();
  } catch (error) {
    if (!connection.isCluster || !(error instanceof Error) || !REROUTED.test(error.message)) throw error;
    await scriptCommand<Reply>(connection, name)(...call);
    return send();
  }
}

/**
 * The process's one Redis subscriber, as the code that listens to a channel needs it (the update
 * hub is one): a subscription Redis has confirmed, and word of a reconnect, after which whatever
 * was published while the connection was down has to be read from where it is kept.
 */
export interface ChannelSubscriber {
  /** Resolves once Redis delivers the channel's messages (JSON parsed when they parse) to `listener`. */
  subscribe(channel: string, listener: ChannelListener): Promise<void>;
  /** Stops handing the channel's messages to `listener`, confirmed or not yet; nothing when it was not subscribed. */
  unsubscribe(channel: string, listener: ChannelListener): void;
  /** Tells `listener` whenever the subscriber reconnected: read what you may have missed. */
  onResync(listener: ResyncListener): void;
  offResync(listener: ResyncListener): void;
}

/**
 * Where a channel's messages go. An object, not a callback: a stream registers itself, so each
 * subscription costs the hub a place in a Set instead of closures and their contexts (about 480
 * bytes per subscription and 210 per resync registration, measured with forced collections).
 * A listener is subscribed to a channel at most once.
 */
export interface ChannelListener {
  onMessage(message: unknown): void;
}

/** Told that messages may have been missed (a reconnect, a moved slot): history has them. */
export interface ResyncListener {
  onResync(): void;
}

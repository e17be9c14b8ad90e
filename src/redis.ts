import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from './logger.js';

/** What a connection is for: subscribers and BullMQ must never time out a blocked command. */
export type RedisRole = 'commands' | 'subscriber' | 'bullmq';

/**
 * Creates one Redis connection. Retries forever with a capped backoff, because a Redis restart
 * or failover is an ordinary event that every process must ride out.
 */
function createRedis(url: string, role: RedisRole, logger?: Logger): Redis {
  const options: RedisOptions = {
    connectionName: `herald-${role}`,
    retryStrategy: (attempt) => Math.min(50 * 2 ** Math.min(attempt, 10), 2_000),
    maxRetriesPerRequest: role === 'commands' ? 20 : null,
    enableReadyCheck: true,
  };
  const redis = new Redis(url, options);
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

/** The three connections every Herald process needs; a subscriber can run no other command. */
export function createRedisConnections(url: string, logger?: Logger) {
  const connections = {
    commands: createRedis(url, 'commands', logger),
    subscriber: createRedis(url, 'subscriber', logger),
    bullmq: createRedis(url, 'bullmq', logger),
  };
  return {
    ...connections,
    disconnect(): void {
      for (const connection of Object.values(connections)) connection.disconnect();
    },
  };
}

import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { inject } from 'vitest';

/** A key prefix no other test uses, so test files can share one Redis. */
export function uniquePrefix(): string {
  return `t${randomBytes(5).toString('hex')}:`;
}

let providedRedisUrl: string | undefined;

/** Names the Redis test code shares when it runs without vitest's globalSetup (`npm run faults`). */
export function provideRedisUrl(url: string): void {
  providedRedisUrl = url;
}

/** The Redis test code shares: vitest's globalSetup provides it, or a runner without one via provideRedisUrl. */
export function redisUrl(): string {
  return providedRedisUrl ?? inject('redisUrl');
}

export function connect(url = redisUrl()): Redis {
  // disableClientInfo: see roleOptions in src/redis.ts (redis/ioredis#2037).
  return new Redis(url, { maxRetriesPerRequest: null, disableClientInfo: true });
}

/** A command the shared Redis ran, as MONITOR reports it. */
export interface MonitoredCommand {
  /** In lower case. */
  command: string;
  args: string[];
}

/**
 * Every command clients send the shared Redis from now on (not the calls scripts make), in the
 * order Redis ran them, until `stop()`. Over a MONITOR connection of its own: one duplicated from a
 * used connection loses track of its replies. MONITOR reports a command a while after Redis ran
 * it: `settled()` waits until everything run before the call has been reported.
 */
export async function monitorCommands(): Promise<{ commands: MonitoredCommand[]; settled(): Promise<void>; stop(): void }> {
  const monitor = new Redis(redisUrl(), { monitor: true, disableClientInfo: true });
  // A line that arrives while ioredis is not in its monitoring state (just before it, or after
  // disconnect()) is reported as an error, "Command queue state error"; such lines are of no interest here.
  monitor.on('error', () => undefined);
  await new Promise((resolve) => monitor.once('monitoring', resolve));
  const commands: MonitoredCommand[] = [];
  const markers = new Map<string, () => void>();
  monitor.on('monitor', (_time: string, args: string[], source: string) => {
    if (source === 'lua') return;
    const [command = '', ...rest] = args;
    const marker = command.toLowerCase() === 'echo' ? markers.get(rest[0] ?? '') : undefined;
    if (marker) return marker();
    commands.push({ command: command.toLowerCase(), args: rest });
  });
  return {
    commands,
    async settled() {
      const marker = `monitor-settled-${Math.random().toString(36).slice(2)}`;
      const seen = new Promise<void>((resolve) => markers.set(marker, resolve));
      const client = connect();
      try {
        await client.echo(marker);
      } finally {
        client.disconnect();
      }
      await seen;
      markers.delete(marker);
    },
    stop: () => monitor.disconnect(),
  };
}

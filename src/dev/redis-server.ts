import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';

/** A redis-server child process on loopback: the dev runner's embedded Redis and the tests' Redis. */
export interface RedisServer {
  url: string;
  port: number;
  process: ChildProcess;
  stop(): Promise<void>;
}

export interface RedisServerOptions {
  /** Where Redis keeps its files; a fresh temporary folder (removed on stop) when absent. */
  dataDir?: string;
  /** Keep an append-only file so data survives a restart (dev); off for tests. */
  appendOnly?: boolean;
  port?: number;
  extraArgs?: string[];
  /** Run as a Redis Sentinel with these lines of configuration (`sentinel monitor ...`). */
  sentinel?: string[];
}

/** A port nobody listens on right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

function hasRedisServer(): boolean {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Makes sure `redis-server` exists: installs Debian's package when we are root on a machine with
 * apt-get, and otherwise says exactly what to do.
 */
export function ensureRedisServer(log: (line: string) => void = console.log): void {
  if (hasRedisServer()) return;
  const isRoot = process.getuid?.() === 0;
  let hasApt: boolean;
  try {
    execFileSync('apt-get', ['--version'], { stdio: 'ignore' });
    hasApt = true;
  } catch {
    hasApt = false;
  }
  if (!isRoot || !hasApt) {
    throw new Error(
      'redis-server is not installed. Install it (Debian/Ubuntu: sudo apt-get install -y redis-server; ' +
        'macOS: brew install redis) or set REDIS_URL to a Redis you already run.',
    );
  }
  log('redis-server is missing: installing Debian package redis-server ...');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '-qq', 'redis-server'], { stdio: 'inherit', env });
}

async function waitUntilAnswering(url: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const probe = new Redis(url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    probe.on('error', () => undefined);
    try {
      await probe.connect();
      await probe.ping();
      return;
    } catch {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`redis-server did not start at ${url}`);
      await new Promise((r) => setTimeout(r, 50));
    } finally {
      probe.disconnect();
    }
  }
}

/** A sentinel keeps its state by rewriting its config file, so it gets one of its own. */
function sentinelConfigFile(dir: string, lines: string[]): string {
  const file = join(dir, 'sentinel.conf');
  writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

/** Starts redis-server (or a sentinel) and resolves once it answers PING. */
export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServer> {
  const port = options.port ?? (await freePort());
  const temporary = options.dataDir === undefined;
  const dir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'herald-redis-'));
  mkdirSync(dir, { recursive: true });
  const args = options.sentinel
    ? [sentinelConfigFile(dir, options.sentinel), '--sentinel']
    : ['--dir', dir, '--save', '', '--appendonly', options.appendOnly ? 'yes' : 'no'];
  args.push('--port', String(port), '--bind', '127.0.0.1', ...(options.extraArgs ?? []));
  const child = spawn('redis-server', args, { stdio: ['ignore', 'ignore', 'inherit'] });
  const url = `redis://127.0.0.1:${port}`;
  await waitUntilAnswering(url, child, 10_000);
  return {
    url,
    port,
    process: child,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      if (temporary) rmSync(dir, { recursive: true, force: true });
    },
  };
}

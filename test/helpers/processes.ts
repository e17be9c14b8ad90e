import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../src/dev/redis-server.js';
import { nth, type Tuple } from './elements.js';
import { TEST_SECRET } from './herald.js';
import { redisUrl, uniquePrefix } from './redis.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const require = createRequire(import.meta.url);

/**
 * Runs one of Herald's entry points (src/worker.ts, src/main.ts) as a real child process, in the
 * project root or in `cwd` (where `npm run dev` keeps its .data/).
 */
export function spawnEntry(
  entry: string,
  env: Record<string, string>,
  args: string[] = [],
  cwd = root,
): ChildProcess & { stop(): Promise<void> } {
  const child = spawn(process.execPath, ['--import', require.resolve('tsx'), join(root, entry), ...args], {
    cwd,
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return Object.assign(child, {
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  });
}

/**
 * Resolves when the child prints a line containing `text` (its pino log), rejects on exit. The
 * default wait covers a tsx start (compiling on the fly) while the whole suite loads both cores.
 */
export function waitForOutput(child: ChildProcess, text: string, timeoutMs = 45_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    const timer = setTimeout(() => reject(new Error(`no "${text}" within ${timeoutMs} ms: ${buffered.slice(-500)}`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString();
      if (buffered.includes(text)) {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before "${text}": ${buffered.slice(-500)}`));
    });
  });
}

/** API and worker processes on one Redis under one key prefix, as a deployment runs them. */
export interface Cluster<A extends number = number, W extends number = number> {
  apiUrls: Tuple<string, A>;
  apis: Tuple<ReturnType<typeof spawnEntry>, A>;
  workers: Tuple<ReturnType<typeof spawnEntry>, W>;
  /** Starts a new API process on the port of `apiUrls[index]` (after the one there died) and appends it to `apis`. */
  restartApi(index: number): Promise<void>;
  /** Starts one more worker and appends it to `workers`: a test that must see a job's updates live starts it after subscribing. */
  startWorker(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts the cluster under a fresh key prefix; `settings` adds to its environment, and `redis` says
 * where Redis is (by default the suite's Redis; for Sentinel, REDIS_SENTINELS and REDIS_SENTINEL_MASTER).
 */
export async function startCluster<const A extends number, const W extends number>(
  settings: Record<string, string>,
  counts: { apis: A; workers: W },
  redis: Record<string, string> = { REDIS_URL: redisUrl() },
): Promise<Cluster<A, W>> {
  const env = { ...redis, JWT_SECRET: TEST_SECRET, KEY_PREFIX: uniquePrefix(), ...settings };
  const apis: Cluster['apis'] = [];
  const workers: Cluster['workers'] = [];
  const apiUrls: string[] = [];
  const stop = async () => {
    await Promise.all([...apis, ...workers].map((child) => child.stop()));
  };
  const startApi = async (port: number) => {
    const api = spawnEntry('src/main.ts', { ...env, PORT: String(port), HOST: '127.0.0.1' });
    apis.push(api);
    await waitForOutput(api, 'API ready');
  };
  const startWorker = async () => {
    const worker = spawnEntry('src/worker.ts', env);
    workers.push(worker);
    await waitForOutput(worker, 'worker ready');
  };
  try {
    for (let i = 0; i < counts.apis; i += 1) {
      const port = await freePort();
      await startApi(port);
      apiUrls.push(`http://127.0.0.1:${port}`);
    }
    for (let i = 0; i < counts.workers; i += 1) await startWorker();
  } catch (error) {
    await stop();
    throw error;
  }
  const restartApi = (index: number) => startApi(Number(new URL(nth(apiUrls, index)).port));
  return {
    apiUrls: apiUrls as Tuple<string, A>,
    apis: apis as Cluster<A>['apis'],
    workers: workers as Cluster<number, W>['workers'],
    restartApi,
    startWorker,
    stop,
  };
}

/** Resolves with a child's exit code and the time it exited; set it up before signalling the child. */
export function exitOf(child: ChildProcess): Promise<{ code: number | null; at: number }> {
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, at: Date.now() })));
}

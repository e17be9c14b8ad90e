/**
 * `npm run bench:append`: what one update costs Redis itself, without a server or subscribers: the
 * shipped append.lua called one update at a time and in batches, against a bare PUBLISH of the same
 * entry. Prints redis-server CPU µs per update (INFO's used_cpu_sys + used_cpu_user over the run)
 * and, with `--callgrind` (valgrind installed), the instructions redis-server executed per update,
 * which other processes on the machine do not move.
 *
 *   npm run bench:append -- [--callgrind] [--updates 20000] [--topics 33] [--limit 1000] [--batches 1,16,64] [--baseline old.lua]
 *
 * `--replica` starts a replica of that redis-server; `--wait` too, and sends every script call with
 * `WAIT 1 1000` after it in one pipeline, as the store does with APPEND_WAIT_REPLICAS=1 (compare the
 * two for what waiting costs Redis).
 */
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, readdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { freePort, startRedisServer } from '../src/dev/redis-server.js';
import { APPEND_SCRIPT } from '../src/updates/store.js';

const { values: options } = parseArgs({
  options: {
    callgrind: { type: 'boolean', default: false },
    updates: { type: 'string', default: '20000' },
    topics: { type: 'string', default: '33' },
    limit: { type: 'string', default: '1000' },
    batches: { type: 'string', default: '1,16,64' },
    replica: { type: 'boolean', default: false },
    wait: { type: 'boolean', default: false },
    baseline: { type: 'string' },
  },
});
const UPDATES = Number(options.updates);
const TOPICS = Number(options.topics);
const TTL = '3600';
/** Calls waiting for their reply at once: enough to keep Redis busy, as a loaded producer does. */
const WINDOW = 500;
const update = JSON.stringify({
  event: 'bench_progress',
  status: 'PROCESSING',
  progress: 5,
  timestamp: '2026-12-02T16:00:00.000Z',
  data: { bt: 123456789 },
});

interface Variant {
  name: string;
  lua: string | null;
  batch: number;
}

async function startRedis(dir: string): Promise<{ url: string; pid: number; stop(): Promise<void> }> {
  if (!options.callgrind) {
    const server = await startRedisServer();
    return { url: server.url, pid: server.process.pid!, stop: () => server.stop() };
  }
  const port = await freePort();
  const child = spawn(
    'valgrind',
    ['--tool=callgrind', `--callgrind-out-file=${join(dir, 'cg.out')}`, 'redis-server', '--port', String(port), '--save', ''],
    { stdio: 'ignore' },
  );
  const url = `redis://127.0.0.1:${port}`;
  for (let i = 0; ; i += 1) {
    const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    try {
      await probe.connect();
      await probe.ping();
      break;
    } catch (error) {
      if (i === 100) throw error;
      await new Promise((resolve) => setTimeout(resolve, 200));
    } finally {
      probe.disconnect();
    }
  }
  return {
    url,
    pid: child.pid!,
    stop: async () => {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Instructions redis-server executed since the last call (callgrind zeroes its counters on each dump). */
function instructionsSinceLastDump(pid: number, dir: string): number {
  execFileSync('callgrind_control', ['-d', String(pid)], { stdio: 'ignore' });
  const dumps = readdirSync(dir)
    .filter((f) => f.startsWith('cg.out.'))
    .sort((a, b) => Number(a.split('.').pop()) - Number(b.split('.').pop()));
  const text = readFileSync(join(dir, dumps.at(-1)!), 'utf8');
  return Number(/^(?:summary|totals): (\d+)/m.exec(text)?.[1] ?? NaN);
}

async function cpuUs(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const field = (name: string) => Number(new RegExp(`${name}:([0-9.]+)`).exec(info)?.[1] ?? NaN);
  return (field('used_cpu_sys') + field('used_cpu_user')) * 1e6;
}

/** Sends UPDATES updates round-robin over TOPICS streams, `batch` per call, WINDOW calls in flight. */
async function run(redis: Redis, variant: Variant): Promise<void> {
  const sha = variant.lua ? ((await redis.script('LOAD', variant.lua)) as string) : '';
  const seqs = new Array<number>(TOPICS).fill(0);
  let pending: Array<Promise<unknown>> = [];
  for (let n = 0; n < UPDATES; n += variant.batch) {
    if (!variant.lua) {
      const t = n % TOPICS;
      pending.push(
        redis.publish(`ch:${t}`, `{"seq":${n},"epoch":"b000000000000001","kind":"file","id":"t${t}","update":${update}}`),
      );
    } else {
      const keys: string[] = [];
      const args: string[] = [options.limit, TTL, 'PUBLISH'];
      for (let j = 0; j < variant.batch; j += 1) {
        const t = (n + j) % TOPICS;
        seqs[t]! += 1;
        keys.push(`m:{file:t${t}}`, `h:{file:t${t}}`, `i:{file:t${t}}`);
        args.push('b000000000000001', `"kind":"file","id":"t${t}"`, update, '0', `ch:${t}`, `t${t}:${seqs[t]}`);
        if (variant.batch > 1) args.push('', '', '', '');
      }
      pending.push(
        options.wait
          ? redis
              .pipeline()
              .evalsha(sha, keys.length, ...keys, ...args)
              .wait(1, 1000)
              .exec()
          : redis.evalsha(sha, keys.length, ...keys, ...args),
      );
    }
    if (pending.length >= WINDOW) {
      await Promise.all(pending);
      pending = [];
    }
  }
  await Promise.all(pending);
}

const batches = options.batches.split(',').map(Number);
const variants: Variant[] = [
  ...(options.baseline
    ? batches.map((batch) => ({
        name: `${options.baseline}, ${batch} per call`,
        lua: readFileSync(options.baseline!, 'utf8'),
        batch,
      }))
    : []),
  ...batches.map((batch) => ({ name: `append.lua, ${batch} per call`, lua: APPEND_SCRIPT, batch })),
  { name: 'PUBLISH of the entry', lua: null, batch: 1 },
];

const dir = mkdtempSync(join(tmpdir(), 'herald-append-cost-'));
const server = await startRedis(dir);
const redis = new Redis(server.url);
const replica =
  options.replica || options.wait
    ? await startRedisServer({ extraArgs: ['--replicaof', '127.0.0.1', new URL(server.url).port] })
    : null;
try {
  if (replica) {
    const probe = new Redis(replica.url);
    while (!(await probe.info('replication')).includes('master_link_status:up')) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    probe.disconnect();
  }
  console.log(
    `${UPDATES} updates over ${TOPICS} streams (history limit ${options.limit}), ${WINDOW} calls in flight${options.callgrind ? ', redis-server under callgrind' : ''}${replica ? `, a replica${options.wait ? ', WAIT 1 after each call' : ''}` : ''}\n`,
  );
  console.log(`| variant | Redis CPU µs / update |${options.callgrind ? ' instructions / update |' : ''}`);
  console.log(`| --- | ---: |${options.callgrind ? ' ---: |' : ''}`);
  for (const variant of variants) {
    await redis.flushall();
    const before = await cpuUs(redis);
    if (options.callgrind) instructionsSinceLastDump(server.pid, dir);
    await run(redis, variant);
    const instructions = options.callgrind ? instructionsSinceLastDump(server.pid, dir) : NaN;
    const cpu = ((await cpuUs(redis)) - before) / UPDATES;
    console.log(
      `| ${variant.name} | ${cpu.toFixed(2)} |${options.callgrind ? ` ${Math.round(instructions / UPDATES).toLocaleString('en-US')} |` : ''}`,
    );
  }
} finally {
  redis.disconnect();
  await replica?.stop();
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}

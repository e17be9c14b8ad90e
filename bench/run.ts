/**
 * `npm run bench`: Herald and two baselines (raw, stock) under the same load, one server at a time
 * on core 0; Redis, the producer, the load client and this runner on core 1. Prints one markdown
 * table per scenario and the targets, and writes bench/results/latest.json.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { signToken } from '../src/auth/token.js';
import { ensureRedisServer, freePort, startRedisServer, type RedisServer } from '../src/dev/redis-server.js';
import { encodeCursor } from '../src/updates/cursor.js';
import { createUpdateStore } from '../src/updates/store.js';
import { Client, createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { makeDocument, makePlainText } from '../test/helpers/documents.js';
import { nth } from '../test/helpers/elements.js';
import { parseParams, type Params, type ProfiledScenario, type Scenario } from './params.js';
import {
  canPin,
  coreBusyPercent,
  coreTimes,
  cpuTimeUs,
  openFileLimit,
  pinProcess,
  resultsDir,
  rssKb,
  spawnPinned,
  waitForPort,
  type Child,
} from './processes.js';
import { summarizeProfile, type ProfileSummary } from './profile.js';
import { printReport, type AnswerRun, type DocumentRun, type Row, type Results, type Step } from './report.js';
import { clusterScaling } from './cluster.js';
import { startOtlpSink } from './otlp-sink.js';
import { connectionStorm, type StormRunner } from './s7.js';
import {
  createPeer,
  nowUs,
  sleep,
  type ClientReport,
  type Peer,
  type ProducerReport,
  type ServerKind,
  type SubscriptionSpec,
} from './shared.js';

const SERVER_CORE = 0;
const LOAD_CORE = 1;
const KEY_PREFIX = 'hb:';
const OWNER = 'bench-user';
const SECRET = randomBytes(32).toString('hex');

/** What a typical Herald client selects: the FileUpdateFields fragment without `gap`. */
const HERALD_QUERY =
  'subscription Progress($fileId: ID!, $after: String) { fileProgress(fileId: $fileId, after: $after) ' +
  '{ cursor seq event status progress message timestamp data fileId } }';
const STOCK_QUERY =
  'subscription Progress($fileId: ID!) { fileProgress(fileId: $fileId) { fileId seq event status progress message timestamp data } }';

interface Server {
  kind: ServerKind;
  child: Child;
  port: number;
  wsUrl: string;
  httpUrl: string;
}

interface Bench {
  params: Params;
  redis: RedisServer;
  admin: Redis;
  producer: Peer;
  client: Peer;
  token: string;
  children: Child[];
  openFiles: number;
  /** The bench's own processes on the load core: Redis, producer, load client. */
  loadPids: number[];
}

const log = (line: string) => process.stderr.write(`[bench] ${line}\n`);

// ---------------------------------------------------------------------------------------------
// Servers

async function startServer(bench: Bench, kind: ServerKind, name: string, nodeArgs: string[] = []): Promise<Server> {
  const port = await freePort();
  const common = { PORT: String(port), REDIS_URL: bench.redis.url };
  const entry = { herald: 'src/main.ts', raw: 'bench/servers/raw.ts', stock: 'bench/servers/stock.ts' }[kind];
  const env =
    kind === 'herald'
      ? {
          ...common,
          HOST: '127.0.0.1',
          JWT_SECRET: SECRET,
          KEY_PREFIX,
          LOG_LEVEL: 'warn',
          // Herald's own limits must not be what the bench measures.
          SUBSCRIBER_QUEUE_LIMIT: '1000000',
          MAX_CONNECTIONS_PER_USER: '100000',
          MUTATIONS_PER_MINUTE: '1000000',
          HISTORY_LIMIT: '1000',
          ...bench.params.heraldEnv,
        }
      : common;
  const child = spawnPinned(name, entry, { core: SERVER_CORE, env, nodeArgs, openFiles: bench.openFiles });
  bench.children.push(child);
  await waitForPort(port, child);
  const httpUrl = `http://127.0.0.1:${port}`;
  if (kind === 'herald') {
    const deadline = Date.now() + 20_000;
    while (
      (await fetch(`${httpUrl}/readyz`).then(
        (r) => r.status,
        () => 0,
      )) !== 200
    ) {
      if (Date.now() > deadline) throw new Error('Herald did not become ready (/readyz) within 20 s');
      await sleep(100);
    }
  }
  return { kind, child, port, httpUrl, wsUrl: kind === 'raw' ? `ws://127.0.0.1:${port}` : `ws://127.0.0.1:${port}/graphql` };
}

async function stopServer(bench: Bench, server: Server): Promise<void> {
  await server.child.stop();
  bench.children = bench.children.filter((c) => c !== server.child);
}

// ---------------------------------------------------------------------------------------------
// Load

function topicIds(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `f${i}`);
}

function specsFor(kind: ServerKind, ids: string[], connections: number): SubscriptionSpec[] {
  return Array.from({ length: connections }, (_, i) => {
    const topic = i % ids.length;
    return { topic, variables: kind === 'raw' ? { topic: ids[topic] } : { fileId: ids[topic] } };
  });
}

interface ClientStatus {
  total: number;
  ready: number;
  received: number;
  completed: number;
  caughtUp: number;
  notReadyTopics: number[];
  errors: number;
  closed: number;
  firstError: string;
}

/** Publishes a prime on every topic until every subscription has received one (bounded: 60 s). */
async function primeUntilReady(bench: Pick<Bench, 'client' | 'producer'>, topics: number): Promise<ClientStatus> {
  await bench.producer.call('prime', { topics: Array.from({ length: topics }, (_, i) => i) });
  const deadline = Date.now() + 60_000;
  let lastPrime = Date.now();
  for (;;) {
    const status = await bench.client.call<ClientStatus>('status');
    if (status.ready === status.total || Date.now() > deadline) {
      if (status.ready < status.total) log(`only ${status.ready} of ${status.total} subscriptions became live`);
      // In-flight primes land before anything is measured.
      await sleep(500);
      return status;
    }
    if (Date.now() - lastPrime > 2_000) {
      await bench.producer.call('prime', { topics: status.notReadyTopics });
      lastPrime = Date.now();
    }
    await sleep(100);
  }
}

interface Prepared {
  server: Server;
  rssBeforeKb: number;
  rssPerSubKb: number | null;
  subscriptions: number;
  subsPerTopic: number[];
  setupNote: string[];
}

/** Starts the server, writes the topics, connects and subscribes everything, and waits until live. */

/** Tells the producer which topics to publish to (for Herald, it registers them as resources first). */
function initTopics(bench: Bench, kind: ServerKind, ids: string[]): Promise<unknown> {
  return bench.producer.call('init', {
    kind,
    redisUrl: bench.redis.url,
    keyPrefix: KEY_PREFIX,
    topics: ids,
    owner: OWNER,
    traced: bench.params.otlp,
  });
}

async function prepare(
  bench: Bench,
  kind: ServerKind,
  name: string,
  connections: number,
  topics: number,
  nodeArgs: string[] = [],
): Promise<Prepared> {
  await bench.admin.flushall();
  const server = await startServer(bench, kind, name, nodeArgs);
  const ids = topicIds(topics);
  await initTopics(bench, kind, ids);
  await sleep(1_000);
  const rssBeforeKb = rssKb(server.child.pid);
  const specs = specsFor(kind, ids, connections);
  const connected = await bench.client.call<{ opened: number; failures: number; firstFailure: string; ms: number }>(
    'connect',
    {
      kind,
      url: server.wsUrl,
      token: bench.token,
      query: kind === 'herald' ? HERALD_QUERY : STOCK_QUERY,
      subscriptions: specs,
      subscribeNow: true,
    },
    300_000,
  );
  const setupNote: string[] = [];
  if (connected.failures > 0) setupNote.push(`${connected.failures} connections failed (${connected.firstFailure})`);
  log(`  ${connected.opened} connections in ${connected.ms} ms`);
  const status = await primeUntilReady(bench, topics);
  if (status.ready < status.total) setupNote.push(`${status.total - status.ready} subscriptions never became live`);
  await sleep(1_000);
  const rssAfterKb = rssKb(server.child.pid);
  const subsPerTopic = new Array<number>(topics).fill(0);
  for (const spec of specs) subsPerTopic[spec.topic] = nth(subsPerTopic, spec.topic) + 1;
  return {
    server,
    rssBeforeKb,
    rssPerSubKb: connected.opened > 0 ? (rssAfterKb - rssBeforeKb) / connected.opened : null,
    subscriptions: connected.opened,
    subsPerTopic,
    setupNote,
  };
}

/** CPU seen over a measured period: the server's, each core's, and what processes outside the bench took. */
interface CpuWindow {
  serverCpuUs: number;
  /** redis-server's, which Herald's appends (a Lua script each) load far more than a PUBLISH. */
  redisCpuUs: number;
  wallUs: number;
  /** Busy % of each core. */
  cores: number[];
  /** Busy % of core 0 and core 1 not explained by the bench's own processes (other users of the machine). */
  outside: number[];
}

function sumCpuUs(pids: number[]): number {
  let total = 0;
  for (const pid of pids) {
    try {
      total += cpuTimeUs(pid);
    } catch {
      // exited
    }
  }
  return total;
}

function runnerCpuUs(): number {
  const usage = process.cpuUsage();
  return usage.user + usage.system;
}

/** Starts sampling; the returned function ends the period. `startedInside` are core-0 processes started during it (S6's worker). */
function openCpuWindow(bench: Bench, serverPid: number): (startedInside?: number[]) => CpuWindow {
  const t0 = nowUs();
  const cores0 = coreTimes();
  const server0 = cpuTimeUs(serverPid);
  const redisPid = bench.redis.process.pid!;
  const redis0 = cpuTimeUs(redisPid);
  const load0 = sumCpuUs(bench.loadPids) + runnerCpuUs();
  return (startedInside = []) => {
    const serverCpuUs = cpuTimeUs(serverPid) - server0;
    const redisCpuUs = cpuTimeUs(redisPid) - redis0;
    const loadUs = sumCpuUs(bench.loadPids) + runnerCpuUs() - load0;
    const insideUs = sumCpuUs(startedInside);
    const cores = coreBusyPercent(cores0, coreTimes());
    const wallUs = Math.max(nowUs() - t0, 1);
    const [serverCore = 0, loadCore = 0] = cores;
    const outside = canPin
      ? [serverCore - ((serverCpuUs + insideUs) / wallUs) * 100, loadCore - (loadUs / wallUs) * 100].map((v) => Math.max(0, v))
      : [0, 0];
    return { serverCpuUs, redisCpuUs, wallUs, cores, outside };
  };
}

interface Measured {
  produced: ProducerReport & { firstFailure: string };
  report: ClientReport;
  cpu: CpuWindow;
  /** From the first publish to the last receive. */
  windowUs: number;
  waitEnd: WaitEnd;
}

/** How a wait for deliveries ended. */
type WaitEnd = 'complete' | 'stalled' | 'cap';

/**
 * Waits until `expected` has been reached, or nothing has arrived for `stallMs` (what is missing
 * then is lost), or `capMs` passed while deliveries were still arriving (a backlog).
 */
async function waitDelivered(
  bench: Pick<Bench, 'client'>,
  expected: number,
  field: 'received' | 'completed' | 'caughtUp',
  capMs = 60_000,
  stallMs = 3_000,
): Promise<WaitEnd> {
  const deadline = Date.now() + capMs;
  let last = -1;
  let lastChange = Date.now();
  for (;;) {
    const status = await bench.client.call<ClientStatus>('status');
    if (status[field] >= expected) return 'complete';
    if (Date.now() > deadline) return 'cap';
    if (status[field] !== last) {
      last = status[field];
      lastChange = Date.now();
    } else if (Date.now() - lastChange > stallMs) return 'stalled';
    await sleep(50);
  }
}

/** One measured period at a fixed rate: produce, drain, then read every counter. */
async function measureRate(bench: Bench, prepared: Prepared, rate: number, durationMs: number): Promise<Measured> {
  const closeWindow = openCpuWindow(bench, prepared.server.child.pid);
  await bench.client.call('measure');
  const produced = await bench.producer.call<Measured['produced']>('run', { rate, durationMs }, durationMs * 3 + 60_000);
  let expected = 0;
  for (const [topic, published] of produced.perTopic.entries()) expected += published * nth(prepared.subsPerTopic, topic);
  const waitEnd = await waitDelivered(bench, expected, 'received', Math.max(30_000, durationMs * 3));
  const cpu = closeWindow();
  const report = await bench.client.call<ClientReport>('report', { expected: produced.perTopic });
  const windowUs = Math.max(report.lastReceiveUs, produced.endUs) - produced.startUs;
  return { produced, report, cpu, windowUs, waitEnd };
}

function rowOf(scenario: Scenario, kind: ServerKind, prepared: Prepared | null, m: Measured | null, notes: string[] = []): Row {
  const r = m?.report;
  const allNotes = [...(prepared?.setupNote ?? []), ...notes];
  if (r?.firstError) allNotes.push(`client: ${r.errors} errors, ${r.closed} closed; first: ${r.firstError.slice(0, 160)}`);
  if (m && m.produced.failed > 0) allNotes.push(`producer: ${m.produced.failed} publishes failed (${m.produced.firstFailure})`);
  const backlog = r && m?.waitEnd === 'cap' ? r.lost - r.gaps : 0;
  if (backlog > 0)
    allNotes.push(
      `${backlog} updates still queued when the wait ended (still arriving after ${(m!.cpu.wallUs / 1e6).toFixed(0)} s)`,
    );
  const interference = m ? outsideNote(m.cpu) : null;
  if (interference) allNotes.push(interference);
  return {
    scenario,
    server: kind,
    subscriptions: prepared?.subscriptions ?? 0,
    rate: m ? Math.round((m.produced.published / Math.max(m.produced.endUs - m.produced.startUs, 1)) * 1e6) : null,
    deliveredPerS: r && m ? r.received / Math.max(m.windowUs / 1e6, 1e-3) : null,
    delivered: r?.received ?? null,
    p50: r ? r.latencyMs.p50 : null,
    p95: r ? r.latencyMs.p95 : null,
    p99: r ? r.latencyMs.p99 : null,
    lost: r ? r.lost - backlog : null,
    backlog: r ? backlog : null,
    duplicated: r?.duplicated ?? null,
    outOfOrder: r?.outOfOrder ?? null,
    errors: r ? r.errors + r.closed : null,
    serverCpuUsPerUpdate: r && m && r.received > 0 ? m.cpu.serverCpuUs / r.received : null,
    serverCpuPercent: m ? (m.cpu.serverCpuUs / m.cpu.wallUs) * 100 : null,
    redisCpuUsPerUpdate: m && m.produced.published > 0 ? m.cpu.redisCpuUs / m.produced.published : null,
    rssPerSubKb: prepared?.rssPerSubKb ?? null,
    clientCpuPercent: r?.cpuPercent ?? null,
    producerCpuPercent: m?.produced.cpuPercent ?? null,
    core0Percent: m?.cpu.cores[0] ?? null,
    core1Percent: m?.cpu.cores[1] ?? null,
    outsidePercent: m?.cpu.outside ?? null,
    notes: allNotes,
  };
}

/** Threshold above which CPU taken by processes outside the bench is reported (and an S3 step retried). */
const INTERFERENCE_PERCENT = 10;

function outsideNote(cpu: CpuWindow): string | null {
  const parts = cpu.outside
    .map((v, core) => (v > INTERFERENCE_PERCENT ? `${v.toFixed(0)}% of core ${core}` : ''))
    .filter(Boolean);
  return parts.length ? `processes outside the bench used ${parts.join(' and ')} during the measurement` : null;
}

function failedRow(scenario: Scenario, kind: ServerKind, error: Error): Row {
  log(`  ${scenario} ${kind} failed: ${error.stack ?? error.message}`);
  return { ...rowOf(scenario, kind, null, null), notes: [`run failed: ${error.message.slice(0, 300)}`] };
}

async function closeAll(bench: Bench, server: Server | null): Promise<void> {
  await bench.client.call('close').catch(() => undefined);
  if (server) await stopServer(bench, server);
}

// ---------------------------------------------------------------------------------------------
// Scenarios

/** S1 and S2: a fixed rate over a fixed layout. */
async function fixedRate(
  bench: Bench,
  scenario: 'S1' | 'S2',
  kind: ServerKind,
  nodeArgs: string[] = [],
): Promise<Row & { profileWindow?: [number, number] }> {
  const p = scenario === 'S1' ? bench.params.s1 : bench.params.s2;
  const topics = scenario === 'S1' ? p.connections : 1;
  let prepared: Prepared | null = null;
  try {
    prepared = await prepare(
      bench,
      kind,
      `${scenario}-${kind}${nodeArgs.length ? '-profile' : ''}`,
      p.connections,
      topics,
      nodeArgs,
    );
    const m = await measureRate(bench, prepared, p.rate, p.durationMs);
    const notes =
      m.produced.achievedRate < p.rate * 0.95 ? [`producer reached only ${Math.round(m.produced.achievedRate)}/s`] : [];
    return { ...rowOf(scenario, kind, prepared, m, notes), profileWindow: [m.produced.startUs, m.produced.startUs + m.windowUs] };
  } catch (error) {
    return failedRow(scenario, kind, error as Error);
  } finally {
    await closeAll(bench, prepared?.server ?? null);
  }
}

/** The rates S3 tries, from startRate up to maxRate. */
export function rateLadder(start: number, max: number): number[] {
  const ladder = [
    1_000, 2_000, 3_000, 4_000, 5_000, 6_000, 8_000, 10_000, 12_000, 14_000, 16_000, 20_000, 24_000, 28_000, 32_000, 40_000,
    50_000, 60_000, 80_000, 100_000,
  ];
  const rates = ladder.filter((r) => r >= start && r <= max);
  if (rates[0] !== start) rates.unshift(start);
  return rates;
}

/** S3: S1's layout, the rate stepped up until p99 reaches the limit or anything is lost. */
async function saturation(bench: Bench, kind: ServerKind): Promise<{ row: Row; steps: Step[] }> {
  const p = bench.params.s3;
  let prepared: Prepared | null = null;
  const steps: Step[] = [];
  try {
    prepared = await prepare(bench, kind, `S3-${kind}`, p.connections, p.connections);
    let best: Row | null = null;
    for (const rate of rateLadder(p.startRate, p.maxRate)) {
      let m = await measureRate(bench, prepared, rate, p.stepMs);
      const failedAt = (x: Measured) =>
        x.report.lost > 0 || x.report.duplicated > 0 || x.report.outOfOrder > 0 || x.report.latencyMs.p99 >= p.p99LimitMs;
      let retried: string | null = null;
      if (failedAt(m) && Math.max(...m.cpu.outside) > INTERFERENCE_PERCENT) {
        // Another user of the machine, not the server, may have failed this step: once more.
        retried = `the ${rate}/s step was run twice: ${outsideNote(m.cpu)} the first time (p99 ${m.report.latencyMs.p99.toFixed(1)} ms)`;
        log(`  S3 ${kind} ${rate}/s: ${retried}`);
        await sleep(2_000);
        m = await measureRate(bench, prepared, rate, p.stepMs);
      }
      const row = rowOf('S3', kind, prepared, m, retried ? [retried] : []);
      const reasons: string[] = [];
      if ((row.lost ?? 0) > 0) reasons.push(`${row.lost} lost`);
      if ((row.backlog ?? 0) > 0) reasons.push(`${row.backlog} still queued`);
      if ((row.duplicated ?? 0) > 0) reasons.push(`${row.duplicated} duplicated`);
      if ((row.outOfOrder ?? 0) > 0) reasons.push(`${row.outOfOrder} out of order`);
      if ((row.errors ?? 0) > 0) reasons.push(`${row.errors} errors`);
      if ((row.p99 ?? 0) >= p.p99LimitMs) reasons.push(`p99 ${row.p99?.toFixed(1)} ms`);
      const producerShort = m.produced.achievedRate < rate * 0.95;
      if (producerShort) reasons.push(`producer reached only ${Math.round(m.produced.achievedRate)}/s`);
      const loadSaturated = (row.clientCpuPercent ?? 0) >= 90 || (row.core1Percent ?? 0) >= 90;
      const limit: Step['limit'] = producerShort
        ? 'producer'
        : (row.serverCpuPercent ?? 0) < 85 && loadSaturated
          ? 'load side (core 1)'
          : 'server';
      steps.push({ rate, row, pass: reasons.length === 0, reasons, limit });
      log(
        `  S3 ${kind} ${rate}/s: p99 ${row.p99?.toFixed(2)} ms, lost ${row.lost}, server CPU ${row.serverCpuPercent?.toFixed(0)}%, client CPU ${row.clientCpuPercent?.toFixed(0)}% -> ${reasons.length ? reasons.join(', ') : 'pass'}`,
      );
      if (reasons.length > 0) break;
      best = { ...row, rate };
      await sleep(1_000);
    }
    const failing = steps.find((s) => !s.pass);
    const notes = failing
      ? [`failed at ${failing.rate}/s: ${failing.reasons.join(', ')} (limit: ${failing.limit})`]
      : [`passed every step up to ${p.maxRate}/s`];
    const row = best ? { ...best, notes: [...best.notes, ...notes] } : { ...rowOf('S3', kind, prepared, null), rate: 0, notes };
    return { row, steps };
  } catch (error) {
    return { row: failedRow('S3', kind, error as Error), steps };
  } finally {
    await closeAll(bench, prepared?.server ?? null);
  }
}

/** S4: connections with one idle subscription each; RSS per subscription. */
async function idleMemory(bench: Bench, kind: ServerKind): Promise<Row> {
  const p = bench.params.s4;
  let prepared: Prepared | null = null;
  try {
    prepared = await prepare(bench, kind, `S4-${kind}`, p.connections, p.connections);
    await sleep(2_000);
    const rssKbNow = rssKb(prepared.server.child.pid);
    const perSub = (rssKbNow - prepared.rssBeforeKb) / prepared.subscriptions;
    const status = await bench.client.call<ClientStatus>('status');
    const row = rowOf('S4', kind, { ...prepared, rssPerSubKb: perSub }, null, [
      `RSS ${(prepared.rssBeforeKb / 1024).toFixed(0)} MB idle -> ${(rssKbNow / 1024).toFixed(0)} MB with ${prepared.subscriptions} subscriptions`,
    ]);
    return { ...row, errors: status.errors + status.closed };
  } catch (error) {
    return failedRow('S4', kind, error as Error);
  } finally {
    await closeAll(bench, prepared?.server ?? null);
  }
}

/** S5: clients resuming `updates` updates each from a cursor, all at once. */
async function resume(bench: Bench, nodeArgs: string[] = []): Promise<Row & { profileWindow?: [number, number] }> {
  const p = bench.params.s5;
  let server: Server | null = null;
  try {
    await bench.admin.flushall();
    server = await startServer(bench, 'herald', `S5-herald${nodeArgs.length ? '-profile' : ''}`, nodeArgs);
    const ids = topicIds(p.clients);
    await initTopics(bench, 'herald', ids);
    const anchors = await bench.producer.call<Array<{ seq: number; epoch: string }>>('prime', { topics: ids.map((_, i) => i) });
    const burst = await bench.producer.call<{ ms: number; failed: number }>('burst', { perTopic: p.updates }, 300_000);
    log(`  appended ${p.updates * p.clients} updates in ${burst.ms.toFixed(0)} ms`);
    await sleep(1_000);
    const rssBeforeKb = rssKb(server.child.pid);
    const specs: SubscriptionSpec[] = ids.map((fileId, topic) => {
      const anchor = nth(anchors, topic);
      return { topic, base: anchor.seq, variables: { fileId, after: encodeCursor(anchor) } };
    });
    await bench.client.call(
      'connect',
      { kind: 'herald', url: server.wsUrl, token: bench.token, query: HERALD_QUERY, subscriptions: specs, subscribeNow: false },
      300_000,
    );
    const closeWindow = openCpuWindow(bench, server.child.pid);
    const t0 = nowUs();
    await bench.client.call('resume', { updates: p.updates });
    const waitEnd = await waitDelivered(bench, specs.length, 'caughtUp', 60_000, 5_000);
    const cpu = closeWindow();
    const report = await bench.client.call<ClientReport>('report', { expected: new Array(p.clients).fill(p.updates) });
    const prepared = preparedAfter(server, rssBeforeKb, specs.length);
    const allMs = report.allCaughtUpMs;
    const m: Measured = {
      produced: {
        published: 0,
        perTopic: [],
        startUs: t0,
        endUs: t0,
        achievedRate: 0,
        cpuPercent: 0,
        failed: burst.failed,
        firstFailure: '',
      },
      report,
      cpu,
      windowUs: report.lastReceiveUs - t0,
      waitEnd,
    };
    const row = rowOf('S5', 'herald', prepared, m, [
      allMs === null || allMs === undefined
        ? `only ${report.caughtUp} of ${specs.length} caught up`
        : `all ${specs.length} caught up in ${allMs.toFixed(0)} ms (latency columns: per-client catch-up time)`,
    ]);
    return {
      ...row,
      rate: null,
      caughtUpMs: allMs ?? null,
      caughtUp: report.caughtUp ?? 0,
      profileWindow: [t0, report.lastReceiveUs],
    };
  } catch (error) {
    return failedRow('S5', 'herald', error as Error);
  } finally {
    await closeAll(bench, server);
  }
}

/** The setup figures of a scenario that subscribes in one go: RSS growth per subscription. */
function preparedAfter(server: Prepared['server'], rssBeforeKb: number, subscriptions: number): Prepared {
  return {
    server,
    rssBeforeKb,
    rssPerSubKb: (rssKb(server.child.pid) - rssBeforeKb) / subscriptions,
    subscriptions,
    subsPerTopic: [],
    setupNote: [],
  };
}

/** S6: files started through the API, processed by Herald's BullMQ worker, watched by subscribers. */
async function endToEnd(bench: Bench): Promise<Row> {
  const p = bench.params.s6;
  let server: Server | null = null;
  let worker: Child | null = null;
  try {
    await bench.admin.flushall();
    server = await startServer(bench, 'herald', 'S6-herald');
    const content = makeDocument(p.sections);
    const started: Array<{ fileId: string; cursor: string }> = [];
    const mutation = 'mutation Start($input: StartFileProcessingInput!) { startFileProcessing(input: $input) { fileId cursor } }';
    let nextFile = 0;
    const lane = async () => {
      while (nextFile < p.files) {
        const index = nextFile++;
        const response = await fetch(`${server!.httpUrl}/graphql`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${bench.token}` },
          body: JSON.stringify({ query: mutation, variables: { input: { name: `bench-${index}.md`, content } } }),
        });
        const body = (await response.json()) as {
          data?: { startFileProcessing: { fileId: string; cursor: string } };
          errors?: unknown;
        };
        if (!body.data) throw new Error(`startFileProcessing failed: ${JSON.stringify(body.errors).slice(0, 300)}`);
        started[index] = body.data.startFileProcessing;
      }
    };
    await Promise.all(Array.from({ length: 8 }, lane));
    const rssBeforeKb = rssKb(server.child.pid);
    const specs: SubscriptionSpec[] = started.map((s, topic) => ({ topic, variables: { fileId: s.fileId, after: s.cursor } }));
    await bench.client.call(
      'connect',
      {
        kind: 'herald',
        url: server.wsUrl,
        token: bench.token,
        query: HERALD_QUERY,
        subscriptions: specs,
        subscribeNow: true,
        fullParse: true,
      },
      300_000,
    );
    // Every subscription has its `queued` update before the worker starts (bounded: 30 s).
    for (let i = 0; i < 300; i += 1) {
      const status = await bench.client.call<ClientStatus>('status');
      if (status.ready === status.total) break;
      await sleep(100);
    }
    const closeWindow = openCpuWindow(bench, server.child.pid);
    await bench.client.call('measure');
    worker = spawnPinned('S6-worker', 'src/worker.ts', {
      core: SERVER_CORE,
      env: {
        REDIS_URL: bench.redis.url,
        KEY_PREFIX,
        LOG_LEVEL: 'warn',
        WORKER_CONCURRENCY: String(p.concurrency),
        ...bench.params.heraldEnv,
      },
    });
    bench.children.push(worker);
    const waitEnd = await waitDelivered(bench, specs.length, 'completed', 600_000, 30_000);
    const workerCpuUs = cpuTimeUs(worker.pid);
    const cpu = closeWindow([worker.pid]);
    const report = await bench.client.call<ClientReport>('report', {});
    const prepared = preparedAfter(server, rssBeforeKb, specs.length);
    const m: Measured = {
      produced: {
        published: 0,
        perTopic: [],
        startUs: report.firstReceiveUs,
        endUs: report.firstReceiveUs,
        achievedRate: 0,
        cpuPercent: 0,
        failed: 0,
        firstFailure: '',
      },
      report,
      cpu,
      windowUs: report.lastReceiveUs - report.firstReceiveUs,
      waitEnd,
    };
    const row = rowOf('S6', 'herald', prepared, m, [
      `${report.completed} of ${specs.length} files completed; ${report.received} updates`,
      `worker (also on core ${SERVER_CORE}, concurrency ${p.concurrency}): ${(workerCpuUs / Math.max(report.received, 1)).toFixed(0)} µs CPU per update incl. start-up`,
      "latency from the worker's ISO timestamp (ms resolution)",
    ]);
    return { ...row, rate: null };
  } catch (error) {
    return failedRow('S6', 'herald', error as Error);
  } finally {
    await closeAll(bench, server);
    if (worker) {
      await worker.stop();
      bench.children = bench.children.filter((c) => c !== worker);
    }
  }
}

/** Sizes of S8's documents, in MB: 0.1, 1 and 5 (the default MAX_CONTENT_BYTES). */
const DOCUMENT_MB = [0.1, 1, 5];

/** Follows one file's stream to its terminal update, counting the updates on the way. */
function followFile(
  client: Client,
  fileId: string,
  after: string,
): Promise<{ status: string; message: string | null; updates: number }> {
  const query =
    'subscription F($fileId: ID!, $after: String) { fileProgress(fileId: $fileId, after: $after) { status message } }';
  return new Promise((resolve, reject) => {
    let updates = 0;
    let last: { status: string; message: string | null } = { status: 'NONE', message: null };
    client.subscribe<{ fileProgress: { status: string; message: string | null } }>(
      { query, variables: { fileId, after } },
      {
        next: (value) => {
          if (!value.data) return;
          updates += 1;
          last = value.data.fileProgress;
        },
        error: reject,
        complete: () => resolve({ ...last, updates }),
      },
    );
  });
}

/**
 * S8: plain-text documents of growing size, one at a time, each timed from its startFileProcessing
 * request to its terminal update; the API and one worker on core 0, as in S6.
 */
async function largeDocuments(bench: Bench): Promise<DocumentRun[]> {
  let server: Server | null = null;
  let worker: Child | null = null;
  let client: Client | null = null;
  try {
    await bench.admin.flushall();
    server = await startServer(bench, 'herald', 'S8-herald');
    worker = spawnPinned('S8-worker', 'src/worker.ts', {
      core: SERVER_CORE,
      env: { REDIS_URL: bench.redis.url, KEY_PREFIX, LOG_LEVEL: 'warn', WORKER_CONCURRENCY: '1', ...bench.params.heraldEnv },
    });
    bench.children.push(worker);
    client = createClient({
      url: server.wsUrl,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${bench.token}` },
    });
    const mutation = 'mutation Start($input: StartFileProcessingInput!) { startFileProcessing(input: $input) { fileId cursor } }';
    const processDocument = async (name: string, content: string) => {
      const response = await fetch(`${server!.httpUrl}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${bench.token}` },
        body: JSON.stringify({ query: mutation, variables: { input: { name, content } } }),
      });
      const body = (await response.json()) as {
        data?: { startFileProcessing: { fileId: string; cursor: string } };
        errors?: unknown;
      };
      if (!body.data) throw new Error(`startFileProcessing failed: ${JSON.stringify(body.errors).slice(0, 300)}`);
      const { fileId, cursor } = body.data.startFileProcessing;
      return followFile(client!, fileId, cursor);
    };
    // A small document first, untimed: the worker is up and warm before the first measurement.
    await processDocument('warm-up.txt', makePlainText(1_000).content);
    const runs: DocumentRun[] = [];
    for (const mb of DOCUMENT_MB.filter((size) => size <= bench.params.s8.largestMb)) {
      const { content } = makePlainText(Math.floor(mb * 2 ** 20));
      const startedAt = performance.now();
      const ended = await processDocument(`bench-${mb}mb.txt`, content);
      const run = { mb, bytes: Buffer.byteLength(content), ...ended, seconds: (performance.now() - startedAt) / 1000 };
      log(`S8 ${mb} MB: ${run.status} in ${run.seconds.toFixed(2)} s, ${run.updates} updates`);
      runs.push(run);
    }
    return runs;
  } finally {
    await client?.dispose();
    if (server) await stopServer(bench, server);
    if (worker) {
      await worker.stop();
      bench.children = bench.children.filter((c) => c !== worker);
    }
  }
}

/** What S7 (bench/s7.ts) uses of this runner: its processes, producer and waits, over several load clients. */
function stormRunner(bench: Bench, hardOpenFiles: number): StormRunner {
  return {
    params: bench.params.s7,
    hardOpenFiles,
    producer: bench.producer,
    token: bench.token,
    query: HERALD_QUERY,
    async startHerald(ids) {
      await bench.admin.flushall();
      const server = await startServer({ ...bench, openFiles: hardOpenFiles }, 'herald', 'S7-herald');
      await initTopics(bench, 'herald', ids);
      return { ...server, stop: () => stopServer(bench, server) };
    },
    spawnClient(name, openFiles) {
      const child = spawnPinned(name, 'bench/load-client.ts', { core: LOAD_CORE, ipc: true, openFiles });
      bench.children.push(child);
      bench.loadPids.push(child.pid);
      return { child, peer: createPeer(child.process, name) };
    },
    primeUntilReady: (client, topics) => primeUntilReady({ client, producer: bench.producer }, topics),
    waitReceived: (client, expected, capMs, stallMs) => waitDelivered({ client }, expected, 'received', capMs, stallMs),
  };
}

/** S9's answers, in tokens, and the history kept: Herald's default HISTORY_LIMIT, and one that keeps every update. */
const ANSWER_TOKENS = [500, 2_000];
const ANSWER_HISTORY_LIMITS = [100, 1_000];

/**
 * S9: the Redis memory one answer's stream takes (MEMORY USAGE of every key of its hash tag), and
 * the bytes one read of its whole history returns, its tokens appended 8 per update as the answer
 * job does: into the query's body, or as the whole answer so far on every update (the job before
 * issue 14, and any producer that keeps no body).
 */
async function answerHistory(bench: Bench): Promise<AnswerRun[]> {
  await bench.admin.flushall();
  const runs: AnswerRun[] = [];
  for (const historyLimit of ANSWER_HISTORY_LIMITS) {
    const store = createUpdateStore(bench.admin, { keyPrefix: KEY_PREFIX, historyLimit, ttlSeconds: 3600 });
    for (const tokens of ANSWER_TOKENS) {
      for (const storage of ['text', 'body'] as const) {
        const ref = { kind: 'query', id: `s9-${historyLimit}-${tokens}-${storage}` };
        let text = '';
        let updates = 0;
        for (let i = 0; i < tokens; i += 8) {
          const token = Array.from({ length: Math.min(8, tokens - i) }, (_, k) => ` word${(i + k) % 10}`).join('');
          const restart = text === '';
          text += token;
          updates += 1;
          if (storage === 'text') await store.append(ref, { event: 'token', status: 'PROCESSING', token, text });
          else await store.append(ref, { event: 'token', status: 'PROCESSING', token }, { append: token, restart });
        }
        const keys = await bench.admin.keys(`${KEY_PREFIX}*{query:${ref.id}}`);
        const sizes = await Promise.all(keys.map((key) => bench.admin.memory('USAGE', key, 'SAMPLES', 0)));
        const read = await store.resourceHistory(ref)({ after: 0 });
        const readBytes =
          read.entries.reduce((sum, entry) => sum + Buffer.byteLength(JSON.stringify(entry)), 0) +
          Buffer.byteLength(read.body?.text ?? '');
        const run = {
          tokens,
          storage,
          updates,
          historyLimit,
          redisBytes: sizes.reduce<number>((a, b) => a + (b ?? 0), 0),
          readBytes,
        };
        log(
          `S9 ${tokens} tokens, ${storage}, HISTORY_LIMIT ${historyLimit}: ${run.redisBytes} bytes in Redis, ${readBytes} read`,
        );
        runs.push(run);
      }
    }
  }
  return runs;
}

function notApplicable(scenario: Scenario, kind: ServerKind): Row {
  return { ...rowOf(scenario, kind, null, null), na: true, notes: ['n/a: Herald only (no history, no cursors)'] };
}

// ---------------------------------------------------------------------------------------------

async function profile(bench: Bench, scenario: ProfiledScenario): Promise<ProfileSummary | null> {
  const dir = join(resultsDir, 'profile');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  log(`${scenario} herald again under --cpu-prof`);
  const nodeArgs = ['--cpu-prof', `--cpu-prof-dir=${dir}`];
  const row = scenario === 'S5' ? await resume(bench, nodeArgs) : await fixedRate(bench, scenario, 'herald', nodeArgs);
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) {
    log('no .cpuprofile was written');
    return null;
  }
  return summarizeProfile(join(dir, file), row.profileWindow ?? null, row.delivered ?? 0);
}

async function main(): Promise<void> {
  const params = parseParams();
  const started = new Date();
  const maxConnections = Math.max(
    params.s1.connections,
    params.s2.connections,
    params.s3.connections,
    params.s4.connections,
    params.s5.clients,
  );
  const limit = openFileLimit();
  const openFiles = maxConnections + 1_024;
  const hardLimit = openFileLimit('hard');
  log(
    `open-file limit ${limit} (hard ${hardLimit}), ${openFiles} needed${limit < openFiles ? ': children are raised with prlimit' : ''}`,
  );
  if (hardLimit < openFiles)
    throw new Error(
      `the open-file hard limit ${hardLimit} is below the ${openFiles} the bench needs: run \`ulimit -n ${openFiles * 2}\` (as root) first`,
    );
  if (!canPin) log('taskset is missing: processes are NOT pinned (install util-linux)');
  if (os.cpus().length < 2) log('fewer than two cores: pinning puts everything on core 0');
  pinProcess(process.pid, LOAD_CORE);

  ensureRedisServer((line) => log(line));
  const redis = await startRedisServer({ extraArgs: ['--maxclients', '20000'] });
  pinProcess(redis.process.pid!, LOAD_CORE);
  const admin = new Redis(redis.url, { maxRetriesPerRequest: 3 });
  const otlpSink = params.otlp ? await startOtlpSink() : null;
  if (otlpSink) params.heraldEnv.OTEL_EXPORTER_OTLP_ENDPOINT ??= otlpSink.url;
  const producerChild = spawnPinned('producer', 'bench/producer.ts', { core: LOAD_CORE, ipc: true });
  const clientChild = spawnPinned('load-client', 'bench/load-client.ts', { core: LOAD_CORE, ipc: true, openFiles });
  const bench: Bench = {
    params,
    redis,
    admin,
    producer: createPeer(producerChild.process, 'producer'),
    client: createPeer(clientChild.process, 'load client'),
    token: await signToken(SECRET, { sub: OWNER, ttlSeconds: 12 * 3600 }),
    children: [],
    openFiles,
    loadPids: [redis.process.pid!, producerChild.pid, clientChild.pid],
  };
  let stopping = false;
  const stopAll = async () => {
    if (stopping) return;
    stopping = true;
    for (const child of [...bench.children, producerChild, clientChild]) await child.stop(3_000).catch(() => undefined);
    admin.disconnect();
    await redis.stop();
    if (otlpSink) {
      log(`OTLP sink: ${otlpSink.received.requests} exports, ${otlpSink.received.bytes} bytes received`);
      await otlpSink.stop();
    }
  };
  const onSignal = () => {
    log('interrupted: stopping every process the bench started');
    void stopAll().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('SIGHUP', onSignal);
  process.once('uncaughtException', (error) => {
    log(`crashed: ${error.stack ?? error.message}`);
    void stopAll().finally(() => process.exit(1));
  });

  const results: Results = {
    date: started.toISOString(),
    machine: {
      cpu: os.cpus()[0]?.model ?? 'unknown',
      cores: os.cpus().length,
      memoryGb: Math.round(os.totalmem() / 2 ** 30),
      node: process.version,
      os: `${os.type()} ${os.release()}`,
      pinned: canPin,
    },
    params,
    rows: [],
    s3Steps: {},
    profile: null,
    documents: [],
    storm: null,
    answers: [],
    cluster: [],
    durationS: 0,
  };
  try {
    for (const scenario of params.scenarios) {
      for (const kind of params.servers) {
        log(`${scenario} ${kind}`);
        if (scenario === 'S1' || scenario === 'S2') results.rows.push(await fixedRate(bench, scenario, kind));
        else if (scenario === 'S3') {
          const { row, steps } = await saturation(bench, kind);
          results.rows.push(row);
          results.s3Steps[kind] = steps;
        } else if (scenario === 'S4') results.rows.push(await idleMemory(bench, kind));
        else if (kind !== 'herald') results.rows.push(notApplicable(scenario, kind));
        else if (scenario === 'S5') results.rows.push(await resume(bench));
        else if (scenario === 'S6') results.rows.push(await endToEnd(bench));
        else if (scenario === 'S7') results.storm = await connectionStorm(stormRunner(bench, hardLimit), log);
        else if (scenario === 'S8') results.documents = await largeDocuments(bench);
        else if (scenario === 'S9') results.answers = await answerHistory(bench);
        else results.cluster = await clusterScaling(params.s10, log);
      }
    }
    if (params.profile && params.servers.includes('herald')) results.profile = await profile(bench, params.profile);
  } finally {
    await stopAll();
  }
  results.durationS = Math.round((Date.now() - started.getTime()) / 1000);
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(join(resultsDir, 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(printReport(results));
  log(`results: bench/results/latest.json; child logs: bench/results/logs/`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);

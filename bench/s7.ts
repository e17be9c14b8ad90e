/**
 * S7: as many WebSocket connections as one instance may hold, each with one fileProgress
 * subscription, spread over several load-client processes and 127.0.0.x source addresses. One
 * update to a resource every connection watches, then one to each of `resources` resources.
 */
import { nth } from '../test/helpers/elements.js';
import type { Params } from './params.js';
import { rssKb, type Child } from './processes.js';
import { LATENCY_BUCKET_US, sleep, type ClientReport, type Peer, type SubscriptionSpec } from './shared.js';

/** Open files a Herald process needs besides its WebSockets: Redis, stdio, libuv, /metrics, slack. */
const SERVER_RESERVED_FILES = 500;

/** What S7 needs of the runner: its processes, its producer, and its waits on load clients. */
export interface StormRunner {
  params: Params['s7'];
  /** The open-file hard limit the bench's children run under. */
  hardOpenFiles: number;
  producer: Peer;
  /** A fresh Redis with `ids` registered as resources, and a Herald API on it. */
  startHerald(ids: string[]): Promise<{ child: Child; wsUrl: string; httpUrl: string; stop(): Promise<void> }>;
  spawnClient(name: string, openFiles: number): { child: Child; peer: Peer };
  token: string;
  query: string;
  /** Primes topics 0..topics-1 until every subscription of `client` has received an update (bounded). */
  primeUntilReady(client: Peer, topics: number): Promise<{ ready: number; total: number }>;
  /** Waits until `client`'s `received` reaches `expected`, nothing arrives for `stallMs`, or `capMs` pass. */
  waitReceived(client: Peer, expected: number, capMs: number, stallMs: number): Promise<string>;
}

/** One delivery round: an update on each of some topics, and what every subscriber got. */
export interface StormDelivery {
  updates: number;
  expected: number;
  received: number;
  lost: number;
  duplicated: number;
  outOfOrder: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** The API's event-loop delay over the round (prom-client's monitorEventLoopDelay, 10 ms resolution). */
  loopDelayP99Ms: number | null;
  loopDelayMaxMs: number | null;
  waitEnd: string;
}

export interface StormResult {
  requested: number;
  ran: number;
  /** Why fewer than requested ran, if so. */
  cap: string | null;
  clients: number;
  sourceAddresses: number;
  failures: number;
  firstFailure: string;
  /** From the first connect to every connection acknowledged with its subscribe sent. */
  connectMs: number;
  /** From the first connect to every subscription having received an update. */
  liveMs: number;
  rssBeforeMb: number;
  rssAfterMb: number;
  /** After a further IDLE_MS with nothing happening. */
  rssIdleMb: number;
  rssPerConnectionKb: number;
  rssPerIdleConnectionKb: number;
  broadcast: StormDelivery | null;
  resources: StormDelivery | null;
  errors: number;
  firstError: string;
  /** What did not run to its end, and why. */
  notes: string[];
}

/** Several load clients seen as one: status summed, everything else asked of each. */
function clientGroup(
  peers: Peer[],
): Peer & { each<T>(type: string, payload: (index: number) => Record<string, unknown>): Promise<T[]> } {
  const each = <T>(type: string, payload: (index: number) => Record<string, unknown>, timeoutMs = 600_000) =>
    Promise.all(peers.map((peer, index) => peer.call<T>(type, payload(index), timeoutMs)));
  return {
    each,
    async call<T>(type: string, payload: Record<string, unknown> = {}, timeoutMs?: number): Promise<T> {
      const replies = await each<Record<string, unknown>>(type, () => payload, timeoutMs);
      if (type !== 'status') return replies as T;
      const sum: Record<string, unknown> = { notReadyTopics: [], firstError: '' };
      for (const reply of replies) {
        for (const [key, value] of Object.entries(reply)) {
          if (typeof value === 'number') sum[key] = ((sum[key] as number | undefined) ?? 0) + value;
        }
        sum.notReadyTopics = [...new Set([...(sum.notReadyTopics as number[]), ...(reply.notReadyTopics as number[])])];
        sum.firstError ||= reply.firstError;
      }
      return sum as T;
    },
  };
}

/** A percentile of merged [bucket, count] pairs, in ms. */
function bucketPercentileMs(pairs: Array<[number, number]>, p: number): number {
  const sorted = [...pairs].sort((a, b) => a[0] - b[0]);
  const total = sorted.reduce((n, [, count]) => n + count, 0);
  const rank = Math.ceil(total * p);
  let seen = 0;
  for (const [bucket, count] of sorted) {
    seen += count;
    if (seen >= rank) return ((bucket + 1) * LATENCY_BUCKET_US) / 1000;
  }
  return 0;
}

/** How long S7 leaves the server idle before reading RSS a second time. */
const IDLE_MS = 20_000;

/** The API's event-loop delay since the last scrape (prom-client resets its histogram on every scrape). */
async function eventLoopDelayMs(httpUrl: string): Promise<{ p99: number; max: number } | null> {
  const text = await fetch(`${httpUrl}/metrics`).then(
    (r) => r.text(),
    () => '',
  );
  const read = (name: string) => {
    const match = new RegExp(`^herald_nodejs_eventloop_lag_${name}_seconds(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
    return match ? Number(match[1]) * 1000 : null;
  };
  const p99 = read('p99');
  const max = read('max');
  return p99 === null || max === null ? null : { p99, max };
}

/**
 * Makes every subscription of the first `topics` live and quiet: primed until each has an update,
 * then one more update per topic, waited for by every subscriber (a late subscriber replays it from
 * history). What was published before has then arrived too, so nothing of the setup lands in a
 * measurement. Bounded: 10 ms per connection, at least 60 s.
 */
async function settle(runner: StormRunner, group: ReturnType<typeof clientGroup>, topics: number, connections: number) {
  await runner.primeUntilReady(group, topics);
  const anchors = await runner.producer.call<Array<{ seq: number }>>('prime', {
    topics: Array.from({ length: topics }, (_, i) => i),
  });
  const latest = anchors.map((a) => a.seq);
  const deadline = Date.now() + Math.max(60_000, connections * 10);
  for (;;) {
    const behind = (await group.each<number>('behind', () => ({ latest }))).reduce((n, b) => n + b, 0);
    if (behind === 0) return;
    if (Date.now() > deadline) throw new Error(`${behind} subscriptions still behind the setup's updates`);
    await sleep(200);
  }
}

/** Publishes one update on each of `topics` and judges what the subscribers got. */
async function deliver(
  runner: StormRunner,
  group: ReturnType<typeof clientGroup>,
  httpUrl: string,
  topics: number[],
  subsPerTopic: number[],
): Promise<StormDelivery> {
  const expected = topics.reduce((n, topic) => n + nth(subsPerTopic, topic), 0);
  await group.call('measure');
  await eventLoopDelayMs(httpUrl);
  await runner.producer.call('prime', { topics });
  const waitEnd = await runner.waitReceived(group, expected, 30_000, 5_000);
  const loop = await eventLoopDelayMs(httpUrl);
  const due = new Array<number>(subsPerTopic.length).fill(0);
  for (const topic of topics) due[topic] = 1;
  const reports = await group.each<ClientReport>('report', () => ({ expected: due, buckets: true }));
  const buckets = reports.flatMap((r) => r.buckets ?? []);
  const sum = (field: 'received' | 'lost' | 'duplicated' | 'outOfOrder') => reports.reduce((n, r) => n + r[field], 0);
  return {
    updates: topics.length,
    expected,
    received: sum('received'),
    lost: sum('lost'),
    duplicated: sum('duplicated'),
    outOfOrder: sum('outOfOrder'),
    p50Ms: bucketPercentileMs(buckets, 0.5),
    p99Ms: bucketPercentileMs(buckets, 0.99),
    maxMs: Math.max(0, ...reports.map((r) => r.latencyMs.max)),
    loopDelayP99Ms: loop?.p99 ?? null,
    loopDelayMaxMs: loop?.max ?? null,
    waitEnd,
  };
}

/** Runs S7 at the largest count the open-file hard limit allows, and says when that is fewer than asked. */
export async function connectionStorm(runner: StormRunner, log: (line: string) => void): Promise<StormResult> {
  const p = runner.params;
  const serverCap = runner.hardOpenFiles - SERVER_RESERVED_FILES;
  const ran = Math.min(p.connections, serverCap);
  const cap =
    ran < p.connections
      ? `ran ${ran.toLocaleString('en-US')} of ${p.connections.toLocaleString('en-US')}: hard RLIMIT_NOFILE ${runner.hardOpenFiles} (the server keeps ${SERVER_RESERVED_FILES} for everything else)`
      : null;
  if (cap) log(`  S7 ${cap}`);
  const perClient = Math.min(p.perClient, runner.hardOpenFiles - SERVER_RESERVED_FILES);
  const clientCount = Math.ceil(ran / perClient);
  // Topics 0..resources-1 get an update each in the second round; the last one is watched by every
  // connection in the first. Priming topics 0..n-1 then never reaches a subscription just left.
  const ids = [...Array.from({ length: p.resources }, (_, i) => `r${i}`), 'all'];
  const everyone = p.resources;
  const addressOf = (i: number) => `127.0.0.${2 + Math.floor(i / p.perAddress)}`;
  const specs: SubscriptionSpec[] = Array.from({ length: ran }, (_, i) => ({
    topic: everyone,
    variables: { fileId: 'all' },
    localAddress: addressOf(i),
  }));
  const server = await runner.startHerald(ids);
  const clients = Array.from({ length: clientCount }, (_, k) => runner.spawnClient(`S7-load-client-${k}`, perClient + 200));
  const group = clientGroup(clients.map((c) => c.peer));
  const slice = <T>(items: T[], k: number) => items.slice(k * perClient, (k + 1) * perClient);
  try {
    await sleep(1_000);
    const rssBeforeKb = rssKb(server.child.pid);
    const started = Date.now();
    const connected = await group.each<{ opened: number; failures: number; firstFailure: string }>('connect', (k) => ({
      kind: 'herald',
      url: server.wsUrl,
      token: runner.token,
      query: runner.query,
      subscriptions: slice(specs, k),
      subscribeNow: true,
      concurrency: p.handshakes,
    }));
    const connectMs = Date.now() - started;
    const opened = connected.reduce((n, c) => n + c.opened, 0);
    log(`  S7 ${opened} connections in ${connectMs} ms`);
    await settle(runner, group, ids.length, opened);
    const liveMs = Date.now() - started;
    // RSS 2 s after the storm, as S4 reads it, and again once V8 has had time to give back what it
    // grew for the storm's garbage (its memory reducer runs after several seconds of low allocation).
    await sleep(2_000);
    const rssAfterKb = rssKb(server.child.pid);
    await sleep(IDLE_MS);
    const rssIdleKb = rssKb(server.child.pid);
    const subsPerTopic = new Array<number>(ids.length).fill(0);
    subsPerTopic[everyone] = opened;
    const broadcast = await deliver(runner, group, server.httpUrl, [everyone], subsPerTopic);
    log(`  S7 broadcast: ${broadcast.received} of ${broadcast.expected}, p99 ${broadcast.p99Ms} ms`);

    /** Every connection moves its one subscription to one of the resources, round-robin; one update to each. */
    const manyResources = async () => {
      const moved = await group.each<{ resubscribed: number }>('resubscribe', (k) => ({
        subscriptions: Array.from({ length: nth(connected, k).opened }, (_, i) => {
          const topic = (k * perClient + i) % p.resources;
          return { topic, variables: { fileId: nth(ids, topic) } };
        }),
      }));
      subsPerTopic.fill(0);
      moved.forEach(({ resubscribed }, k) => {
        for (let i = 0; i < resubscribed; i += 1) {
          const topic = (k * perClient + i) % p.resources;
          subsPerTopic[topic] = nth(subsPerTopic, topic) + 1;
        }
      });
      await settle(runner, group, p.resources, opened);
      const topics = Array.from({ length: p.resources }, (_, i) => i);
      const resources = await deliver(runner, group, server.httpUrl, topics, subsPerTopic);
      log(`  S7 ${p.resources} resources: ${resources.received} of ${resources.expected}, p99 ${resources.p99Ms} ms`);
      return resources;
    };
    const notes: string[] = [];
    const resources = await manyResources().catch((error: Error) => {
      notes.push(`the round over ${p.resources} resources did not finish: ${error.message.slice(0, 200)}`);
      return null;
    });
    const status = await group.call<{ errors: number; closed: number; firstError: string }>('status');
    return {
      requested: p.connections,
      ran,
      cap,
      clients: clientCount,
      sourceAddresses: new Set(specs.map((s) => s.localAddress)).size,
      failures: connected.reduce((n, c) => n + c.failures, 0),
      firstFailure: connected.find((c) => c.firstFailure)?.firstFailure ?? '',
      connectMs,
      liveMs,
      rssBeforeMb: rssBeforeKb / 1024,
      rssAfterMb: rssAfterKb / 1024,
      rssIdleMb: rssIdleKb / 1024,
      rssPerConnectionKb: opened > 0 ? (rssAfterKb - rssBeforeKb) / opened : 0,
      rssPerIdleConnectionKb: opened > 0 ? (rssIdleKb - rssBeforeKb) / opened : 0,
      broadcast,
      resources,
      errors: status.errors + status.closed,
      firstError: status.firstError,
      notes,
    };
  } finally {
    await group.call('close').catch(() => undefined);
    for (const client of clients) await client.child.stop(3_000);
    await server.stop();
  }
}

const TARGET_RSS_KB = 10;
const TARGET_P99_MS = 1_000;

/** S7's section of the report: every figure, and each target met or not at the count that ran. */
export function printStorm(r: StormResult): string {
  const n = (v: number, digits = 0) =>
    v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
  const judge = (ok: boolean) => (ok ? 'met' : 'NOT met');
  let out = `\n### S7 ${n(r.ran)} connections on one instance, one subscription each\n\n`;
  if (r.cap) out += `**${r.cap}.** Every figure below is for ${n(r.ran)} connections; nothing is extrapolated.\n\n`;
  out += `${r.clients} load-client processes, ${r.sourceAddresses} source addresses (127.0.0.x). `;
  out += `Connected and acknowledged in ${n(r.connectMs)} ms, every subscription live in ${n(r.liveMs)} ms; `;
  out += `${r.failures} connections failed${r.firstFailure ? ` (first: ${r.firstFailure})` : ''}, ${r.errors} errors or closes afterwards${r.firstError ? ` (first: ${r.firstError.slice(0, 160)})` : ''}. `;
  const kb = (v: number | null) => (v === null ? '–' : `${n(v, 1)} KB`);
  out += `Server RSS ${n(r.rssBeforeMb)} MB before, ${n(r.rssAfterMb)} MB with every subscription 2 s after the last, ${n(r.rssIdleMb)} MB after ${IDLE_MS / 1000} s more idle. `;
  out += `Per connection: RSS ${kb(r.rssPerConnectionKb)} at 2 s, ${kb(r.rssPerIdleConnectionKb)} idle.\n\n`;
  out +=
    '| round | updates | deliveries due | received | lost / dup / out of order | p50 ms | p99 ms | max ms | event-loop delay p99 / max ms |\n';
  out += '| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- |\n';
  for (const [name, d] of [
    ['broadcast to all', r.broadcast],
    ['one update to each resource', r.resources],
  ] as const) {
    if (!d) continue;
    const loop = d.loopDelayP99Ms === null ? '–' : `${n(d.loopDelayP99Ms, 1)} / ${n(d.loopDelayMaxMs ?? 0, 1)}`;
    out += `| ${name} | ${n(d.updates)} | ${n(d.expected)} | ${n(d.received)} | ${d.lost} / ${d.duplicated} / ${d.outOfOrder} | ${n(d.p50Ms, 1)} | ${n(d.p99Ms, 1)} | ${n(d.maxMs, 1)} | ${loop} |\n`;
  }
  for (const note of r.notes) out += `\n**${note}.**\n`;
  const b = r.broadcast;
  const lossless = [r.broadcast, r.resources].every((d) => d && d.lost === 0 && d.duplicated === 0 && d.outOfOrder === 0);
  out += '\n| S7 target | measured | status |\n| --- | --- | --- |\n';
  out += `| ≤ ${TARGET_RSS_KB} KB RSS per idle connection with its subscription | ${kb(r.rssPerIdleConnectionKb)} after ${IDLE_MS / 1000} s idle (${kb(r.rssPerConnectionKb)} 2 s after the storm) | ${judge(r.rssPerIdleConnectionKb <= TARGET_RSS_KB)} (judged idle${r.rssPerIdleConnectionKb <= TARGET_RSS_KB && r.rssPerConnectionKb > TARGET_RSS_KB ? '; not met 2 s after the storm' : ''}) |\n`;
  out += `| broadcast to all with p99 ≤ 1 s | ${b ? `${n(b.p99Ms, 1)} ms` : '–'} | ${judge(!!b && b.p99Ms <= TARGET_P99_MS && b.received === b.expected)} |\n`;
  out += `| every connection got every update | ${[r.broadcast, r.resources].map((d) => (d ? `${n(d.received)} of ${n(d.expected)}` : '–')).join(', ')} | ${judge(lossless && r.failures === 0)} |\n`;
  if (r.cap) out += `\nJudged at ${n(r.ran)} connections, the count that ran, not at ${n(r.requested)}.\n`;
  return out;
}

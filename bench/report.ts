/**
 * Turns a run's results into markdown: one table per scenario with Herald's ratios to raw and
 * stock, the S3 ladder, and the issue's targets judged on the same numbers.
 */
import type { ClusterRun } from './cluster.js';
import type { Params, Scenario } from './params.js';
import type { ProfileSummary } from './profile.js';
import { printStorm, type StormResult } from './s7.js';
import type { ServerKind } from './shared.js';

/** One server in one scenario. Null means "not measured here". */
export interface Row {
  scenario: Scenario;
  server: ServerKind;
  subscriptions: number;
  /** Updates published per second (S3: the highest passing rate). */
  rate: number | null;
  deliveredPerS: number | null;
  delivered: number | null;
  p50: number | null;
  p95: number | null;
  p99: number | null;
  lost: number | null;
  /**
   * Updates still on their way when the wait ended at its cap while deliveries were still
   * arriving: a server behind its load, not one that lost them.
   */
  backlog: number | null;
  duplicated: number | null;
  outOfOrder: number | null;
  /** Protocol errors plus connections the server closed. */
  errors: number | null;
  serverCpuUsPerUpdate: number | null;
  serverCpuPercent: number | null;
  /** redis-server CPU over the measurement per update published (null where the bench published none). */
  redisCpuUsPerUpdate: number | null;
  rssPerSubKb: number | null;
  clientCpuPercent: number | null;
  producerCpuPercent: number | null;
  core0Percent: number | null;
  core1Percent: number | null;
  /** Busy % of core 0 and core 1 that processes outside the bench took. */
  outsidePercent: number[] | null;
  notes: string[];
  na?: boolean;
  /** S5: when the last client had caught up, ms after the subscribes were sent. */
  caughtUpMs?: number | null;
  caughtUp?: number;
}

/** One rate of the S3 ladder. */
export interface Step {
  rate: number;
  row: Row;
  pass: boolean;
  reasons: string[];
  /** Who was most likely the limit when the step failed. */
  limit: 'server' | 'load side (core 1)' | 'producer';
}

export interface Results {
  date: string;
  machine: { cpu: string; cores: number; memoryGb: number; node: string; os: string; pinned: boolean };
  params: Params;
  rows: Row[];
  s3Steps: Partial<Record<ServerKind, Step[]>>;
  profile: ProfileSummary | null;
  /** S8: one document at a time through the API and a worker. */
  documents: DocumentRun[];
  /** S7, when it ran. */
  storm: StormResult | null;
  /** S9: one answer's stream in Redis, with its text in a body or on every update. */
  answers: AnswerRun[];
  /** S10: one Redis node, then a Cluster of three primaries. */
  cluster: ClusterRun[];
  durationS: number;
}

/** One S8 document: from the startFileProcessing request to its terminal update on a subscription. */
export interface DocumentRun {
  mb: number;
  bytes: number;
  status: string;
  message: string | null;
  seconds: number;
  updates: number;
}

/** One S9 answer: what its stream takes in Redis and what reading all of its history returns. */
export interface AnswerRun {
  tokens: number;
  /** `body`: tokens appended to the query's body (Herald's jobs); `text`: the whole answer so far on every update. */
  storage: 'body' | 'text';
  updates: number;
  historyLimit: number;
  /** MEMORY USAGE of every key of the query's stream. */
  redisBytes: number;
  /** Bytes of one read of the whole history kept (entries and body prefix): what a client resuming from the start costs. */
  readBytes: number;
}

const TITLES: Record<Scenario, (p: Params) => string> = {
  S1: (p) =>
    `S1 many topics: ${p.s1.connections} connections, one resource each, ${p.s1.rate} updates/s, ${p.s1.durationMs / 1000} s`,
  S2: (p) =>
    `S2 fan-out: ${p.s2.connections} connections on one resource, ${p.s2.rate} updates/s (${p.s2.rate * p.s2.connections} deliveries/s), ${p.s2.durationMs / 1000} s`,
  S3: (p) =>
    `S3 saturation: S1's layout (${p.s3.connections} connections), rate stepped up every ${p.s3.stepMs / 1000} s until p99 >= ${p.s3.p99LimitMs} ms or anything is lost`,
  S4: (p) => `S4 idle memory: ${p.s4.connections} connections, one subscription each`,
  S5: (p) => `S5 resume: ${p.s5.clients} clients each resuming ${p.s5.updates} updates from a cursor at once`,
  S6: (p) => `S6 end to end: ${p.s6.files} files through BullMQ workers (concurrency ${p.s6.concurrency}) to subscribers`,
  S7: (p) => `S7 ${p.s7.connections} connections on one instance, one subscription each`,
  S8: (p) => `S8 large documents: plain text up to ${p.s8.largestMb} MB, one at a time, through the API and one worker`,
  S9: () => 'S9 answer history bytes: an answer appended 8 tokens per update, with its text in a body or on every update',
  S10: (p) =>
    `S10 one Redis node against a Cluster of three primaries (sharded pub/sub): ${p.s10.updates} updates over ${p.s10.streams} streams, all watched, ${p.s10.window} appends in flight`,
};

/** S10's table: on a Cluster each primary should run about a third of the appends and messages, and no plain PUBLISH. */
function clusterTable(results: Results): string {
  if (results.cluster.length === 0) return '';
  let out = `\n### ${TITLES.S10(results.params)}\n\n| layout | updates/s | Redis CPU µs / update (all nodes) | delivered, out of order | per node: appends (script calls) / messages (publishes) / CPU ms | plain PUBLISH on a Cluster |\n| --- | ---: | ---: | --- | --- | ---: |\n`;
  for (const run of results.cluster) {
    const nodes = run.nodes.map((n) => `${num(n.scriptCalls)} / ${num(n.publishes)} / ${num(n.cpuMs)}`).join('; ');
    const plain = run.layout === 'one node' ? '–' : num(run.plainPublishes);
    out += `| ${run.layout} | ${num(run.updatesPerSecond)} | ${num(run.redisCpuUsPerUpdate, 1)} | ${num(run.delivered)} of ${num(run.updates)}, ${run.outOfOrder} | ${nodes} | ${plain} |\n`;
  }
  return out;
}

/** S9's table: bytes should grow with the answer (body), not with its square (text on every update). */
function answersTable(results: Results): string {
  if (results.answers.length === 0) return '';
  let out = `\n### ${TITLES.S9(results.params)}\n\n| tokens | storage | updates | HISTORY_LIMIT | Redis bytes | history read bytes |\n| ---: | --- | ---: | ---: | ---: | ---: |\n`;
  for (const a of results.answers) {
    out += `| ${num(a.tokens)} | ${a.storage} | ${a.updates} | ${a.historyLimit} | ${num(a.redisBytes)} | ${num(a.readBytes)} |\n`;
  }
  return out;
}

/** S8's table: seconds per MB should stay flat as documents grow. */
function documentsTable(results: Results): string {
  if (results.documents.length === 0) return '';
  let out = `\n### ${TITLES.S8(results.params)}\n\n| MB | bytes | ended | s | s / MB | updates |\n| ---: | ---: | --- | ---: | ---: | ---: |\n`;
  for (const d of results.documents) {
    const ended = d.status === 'COMPLETED' ? d.status : `${d.status}: ${d.message ?? ''}`;
    out += `| ${d.mb} | ${num(d.bytes)} | ${ended} | ${num(d.seconds, 2)} | ${num(d.seconds / (d.bytes / 2 ** 20), 2)} | ${d.updates} |\n`;
  }
  return out;
}

function num(value: number | null | undefined, digits = 0): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '–';
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function ms(value: number | null | undefined): string {
  if (value === null || value === undefined) return '–';
  return num(value, value < 10 ? 2 : 1);
}

function ratio(a: number | null | undefined, b: number | null | undefined): string {
  if (a === null || a === undefined || b === null || b === undefined || b === 0) return '–';
  return `${(a / b).toFixed(2)}×`;
}

function correctness(row: Row): string {
  if (row.lost === null) return '–';
  const backlog = row.backlog ? ` (+${num(row.backlog)} still queued)` : '';
  return `${row.lost} / ${row.duplicated} / ${row.outOfOrder}${backlog}${row.errors ? ` (${row.errors} err)` : ''}`;
}

const HEADER =
  '| server | delivered/s | p50 ms | p95 ms | p99 ms | lost / dup / ooo | server CPU µs / update | server CPU % | RSS / sub KB | load client CPU % | core 1 busy % |\n' +
  '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n';

function line(row: Row, label: string = row.server): string {
  if (row.na) return `| ${label} | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a |\n`;
  return (
    `| ${label} | ${num(row.deliveredPerS)} | ${ms(row.p50)} | ${ms(row.p95)} | ${ms(row.p99)} | ${correctness(row)} | ` +
    `${num(row.serverCpuUsPerUpdate, 1)} | ${num(row.serverCpuPercent)} | ${num(row.rssPerSubKb, 1)} | ${num(row.clientCpuPercent)} | ${num(row.core1Percent)} |\n`
  );
}

function ratioLine(herald: Row | undefined, other: Row | undefined, label: string): string {
  if (!herald || !other || herald.na || other.na) return '';
  return (
    `| ${label} | ${ratio(herald.deliveredPerS, other.deliveredPerS)} | ${ratio(herald.p50, other.p50)} | ${ratio(herald.p95, other.p95)} | ` +
    `${ratio(herald.p99, other.p99)} | | ${ratio(herald.serverCpuUsPerUpdate, other.serverCpuUsPerUpdate)} | | ` +
    `${ratio(herald.rssPerSubKb, other.rssPerSubKb)} | | |\n`
  );
}

function notes(rows: Row[]): string {
  const lines = rows.flatMap((row) => row.notes.map((n) => `- ${row.server}: ${n}`));
  return lines.length ? `\n${lines.join('\n')}\n` : '';
}

function scenarioTable(results: Results, scenario: Scenario): string {
  const rows = results.rows.filter((r) => r.scenario === scenario);
  if (rows.length === 0) return '';
  const by = (kind: ServerKind) => rows.find((r) => r.server === kind);
  let out = `\n### ${TITLES[scenario](results.params)}\n\n`;
  if (scenario === 'S3') return out + saturationTables(results, rows);
  out += HEADER;
  for (const row of rows) out += line(row);
  out += ratioLine(by('herald'), by('raw'), 'herald/raw');
  out += ratioLine(by('herald'), by('stock'), 'herald/stock');
  return out + notes(rows);
}

function saturationTables(results: Results, rows: Row[]): string {
  const by = (kind: ServerKind) => rows.find((r) => r.server === kind);
  let out =
    '| server | highest passing rate /s | delivered/s | p50 ms | p99 ms | lost / dup / ooo | server CPU µs / update | server CPU % | Redis CPU µs / update | load client CPU % | core 1 busy % | stopped by |\n' +
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n';
  for (const row of rows) {
    const failing = results.s3Steps[row.server]?.find((s) => !s.pass);
    const stop = failing
      ? `${num(failing.rate)}/s: ${failing.reasons.join(', ')} (limit: ${failing.limit})`
      : 'nothing (ladder ended)';
    out +=
      `| ${row.server} | ${num(row.rate)} | ${num(row.deliveredPerS)} | ${ms(row.p50)} | ${ms(row.p99)} | ${correctness(row)} | ` +
      `${num(row.serverCpuUsPerUpdate, 1)} | ${num(row.serverCpuPercent)} | ${num(row.redisCpuUsPerUpdate, 1)} | ${num(row.clientCpuPercent)} | ${num(row.core1Percent)} | ${stop} |\n`;
  }
  const herald = by('herald');
  for (const other of ['raw', 'stock'] as const) {
    const o = by(other);
    if (herald && o)
      out += `| herald/${other} | ${ratio(herald.rate, o.rate)} | ${ratio(herald.deliveredPerS, o.deliveredPerS)} | | | | ${ratio(herald.serverCpuUsPerUpdate, o.serverCpuUsPerUpdate)} | | ${ratio(herald.redisCpuUsPerUpdate, o.redisCpuUsPerUpdate)} | | | |\n`;
  }
  const kinds = (['herald', 'raw', 'stock'] as const).filter((k) => results.s3Steps[k]);
  const rates = [...new Set(kinds.flatMap((k) => results.s3Steps[k]!.map((s) => s.rate)))].sort((a, b) => a - b);
  out += `\nEvery step (p99 · server CPU µs per update · Redis CPU µs per update · load client CPU %):\n\n| rate /s | ${kinds.join(' | ')} |\n| ---: |${kinds.map(() => ' --- |').join('')}\n`;
  for (const rate of rates) {
    const cells = kinds.map((k) => {
      const step = results.s3Steps[k]!.find((s) => s.rate === rate);
      if (!step) return '';
      const r = step.row;
      const text = `${ms(r.p99)} ms · ${num(r.serverCpuUsPerUpdate, 1)} µs · ${num(r.redisCpuUsPerUpdate, 1)} µs · ${num(r.clientCpuPercent)}%`;
      return step.pass ? text : `✗ ${step.reasons.join(', ')} (${text})`;
    });
    out += `| ${num(rate)} | ${cells.join(' | ')} |\n`;
  }
  return out + notes(rows);
}

interface Target {
  figure: string;
  target: string;
  measured: string;
  status: 'met' | 'NOT met' | 'not run' | 'inconclusive';
}

function judge(ok: boolean | null): Target['status'] {
  return ok === null ? 'not run' : ok ? 'met' : 'NOT met';
}

/** The issue's targets, judged on this run's numbers. */
export function targets(results: Results): Target[] {
  const row = (scenario: Scenario, kind: ServerKind) =>
    results.rows.find((r) => r.scenario === scenario && r.server === kind && !r.na);
  const out: Target[] = [];

  const h3 = row('S3', 'herald');
  const r3 = row('S3', 'raw');
  const s3 = row('S3', 'stock');
  const rawStop = results.s3Steps.raw?.find((s) => !s.pass);
  const rawLoadLimited = r3 ? !rawStop || rawStop.limit !== 'server' : false;
  if (h3 && s3) {
    const vsStock = (h3.rate ?? 0) >= 1.5 * (s3.rate ?? 0);
    const vsRaw = r3 && rawLoadLimited ? (h3.rate ?? 0) >= (r3.rate ?? 0) : null;
    const stockStopped = results.s3Steps.stock?.some((s) => !s.pass) ?? false;
    out.push({
      figure: 'S3 highest passing rate',
      target: '≥ 1.5× stock, and equal to raw where the load client is the limit',
      measured:
        `herald ${num(h3.rate)}/s, stock ${num(s3.rate)}/s (${ratio(h3.rate, s3.rate)})` +
        (r3
          ? `, raw ${num(r3.rate)}/s (${ratio(h3.rate, r3.rate)}; raw ${rawLoadLimited ? `stopped by the ${rawStop?.limit ?? 'ladder end'}` : 'was server-limited'})`
          : ''),
      // Stock passing the whole ladder bounds nothing: herald may or may not be 1.5× it.
      status:
        !stockStopped && !(vsRaw === false) && !(h3.rate !== null && s3.rate !== null && h3.rate < s3.rate)
          ? 'inconclusive'
          : judge(vsStock && vsRaw !== false),
    });
  } else out.push({ figure: 'S3 highest passing rate', target: '≥ 1.5× stock', measured: '–', status: 'not run' });

  // What each append costs the core Redis shares with the producer and the load client, against a bare PUBLISH.
  const publishAt = (kind: ServerKind) => results.s3Steps[kind]?.find((s) => s.rate === h3?.rate)?.row.redisCpuUsPerUpdate;
  const plain = (['raw', 'stock'] as const)
    .map((k) => (publishAt(k) === undefined ? '' : `, ${k} (PUBLISH) ${num(publishAt(k), 1)} at the same rate`))
    .join('');
  out.push({
    figure: `Redis CPU µs per update, S3 at Herald's highest passing rate${h3?.rate ? ` (${num(h3.rate)}/s)` : ''}`,
    target: '≤ 5 µs',
    measured: h3 && h3.redisCpuUsPerUpdate !== null ? `herald ${num(h3.redisCpuUsPerUpdate, 1)}${plain}` : '–',
    status: judge(h3 && h3.redisCpuUsPerUpdate !== null ? h3.redisCpuUsPerUpdate <= 5 : null),
  });

  const h2 = row('S2', 'herald');
  const r2 = row('S2', 'raw');
  const s2 = row('S2', 'stock');
  out.push({
    figure: 'S2 deliveries/s',
    target: '≥ 2.5× stock and ≥ 0.5× raw',
    measured: h2
      ? `offered ${num(results.params.s2.rate * results.params.s2.connections)}/s; herald ${num(h2.deliveredPerS)}, stock ${num(s2?.deliveredPerS)} (${ratio(h2.deliveredPerS, s2?.deliveredPerS)}), raw ${num(r2?.deliveredPerS)} (${ratio(h2.deliveredPerS, r2?.deliveredPerS)})`
      : '–',
    status: judge(
      h2 && s2 && r2
        ? (h2.deliveredPerS ?? 0) >= 2.5 * (s2.deliveredPerS ?? 0) && (h2.deliveredPerS ?? 0) >= 0.5 * (r2.deliveredPerS ?? 0)
        : null,
    ),
  });

  const h1 = row('S1', 'herald');
  const r1 = row('S1', 'raw');
  out.push({
    figure: 'server CPU µs per delivered update, S1',
    target: '≤ 1.5× raw',
    measured:
      h1 && r1
        ? `herald ${num(h1.serverCpuUsPerUpdate, 1)}, raw ${num(r1.serverCpuUsPerUpdate, 1)} (${ratio(h1.serverCpuUsPerUpdate, r1.serverCpuUsPerUpdate)})`
        : '–',
    status: judge(
      h1 && r1 && h1.serverCpuUsPerUpdate !== null && r1.serverCpuUsPerUpdate !== null
        ? h1.serverCpuUsPerUpdate <= 1.5 * r1.serverCpuUsPerUpdate
        : null,
    ),
  });

  const stockBest = s3?.rate ?? null;
  const atRate = (kind: ServerKind) => results.s3Steps[kind]?.find((s) => s.rate === stockBest)?.row;
  const h3s = stockBest ? atRate('herald') : undefined;
  const r3s = stockBest ? atRate('raw') : undefined;
  out.push({
    figure: `server CPU µs per delivered update, S3 at stock's highest passing rate${stockBest ? ` (${num(stockBest)}/s)` : ''}`,
    target: '≤ 1.5× raw',
    measured:
      h3s && r3s
        ? `herald ${num(h3s.serverCpuUsPerUpdate, 1)}, raw ${num(r3s.serverCpuUsPerUpdate, 1)} (${ratio(h3s.serverCpuUsPerUpdate, r3s.serverCpuUsPerUpdate)})`
        : stockBest && h3 && r3s
          ? `herald never ran at ${num(stockBest)}/s (its ladder stopped earlier); raw ${num(r3s.serverCpuUsPerUpdate, 1)}`
          : '–',
    status: judge(
      h3s && r3s && h3s.serverCpuUsPerUpdate !== null && r3s.serverCpuUsPerUpdate !== null
        ? h3s.serverCpuUsPerUpdate <= 1.5 * r3s.serverCpuUsPerUpdate
        : stockBest && h3 && r3s
          ? false
          : null,
    ),
  });

  const h4 = row('S4', 'herald');
  out.push({
    figure: 'RSS per idle subscription (S4)',
    target: '≤ 15 KB',
    measured: h4
      ? `herald ${num(h4.rssPerSubKb, 1)} KB, stock ${num(row('S4', 'stock')?.rssPerSubKb, 1)} KB, raw ${num(row('S4', 'raw')?.rssPerSubKb, 1)} KB`
      : '–',
    status: judge(h4?.rssPerSubKb != null ? h4.rssPerSubKb <= 15 : null),
  });

  out.push({
    figure: 'S1 p99 latency',
    target: "≤ raw's p99 + 5 ms",
    measured: h1 && r1 ? `herald ${ms(h1.p99)} ms, raw ${ms(r1.p99)} ms` : '–',
    status: judge(h1?.p99 != null && r1?.p99 != null ? h1.p99 <= r1.p99 + 5 : null),
  });

  const h5 = row('S5', 'herald');
  out.push({
    figure: 'S5 resume',
    target: `all ${results.params.s5.clients} caught up in ≤ 1 s`,
    measured: h5
      ? h5.caughtUpMs != null
        ? `all caught up in ${num(h5.caughtUpMs)} ms`
        : `${h5.caughtUp ?? 0} of ${h5.subscriptions} caught up`
      : '–',
    status: judge(h5 ? h5.caughtUpMs != null && h5.caughtUpMs <= 1_000 && h5.lost === 0 : null),
  });

  // Correctness: every Herald row, and every S3 step but the one that stopped the ladder.
  const heraldRows = results.rows.filter((r) => r.server === 'herald' && !r.na && r.lost !== null && r.scenario !== 'S3');
  const heraldSteps = (results.s3Steps.herald ?? []).filter((s) => s.pass).map((s) => s.row);
  const checked = [...heraldRows, ...heraldSteps];
  const bad = checked.filter((r) => r.lost || r.duplicated || r.outOfOrder);
  out.push({
    figure: 'correctness (Herald)',
    target: '0 lost, 0 duplicated, 0 out of order in every scenario',
    measured: checked.length
      ? bad.length
        ? bad.map((r) => `${r.scenario}: ${correctness(r)}`).join('; ')
        : `0 / 0 / 0 in ${checked.length} measured runs`
      : '–',
    status: judge(checked.length ? bad.length === 0 : null),
  });
  return out;
}

export function printReport(results: Results): string {
  const m = results.machine;
  let out = `\n## Benchmark, ${results.date.slice(0, 10)}: ${m.cpu}, ${m.cores} cores, ${m.memoryGb} GB, Node ${m.node}, ${m.os}\n\n`;
  out +=
    `Server under test on core 0 (\`taskset -c 0\`); Redis, producer, load client on core 1${m.pinned ? '' : ' (NOT pinned: taskset missing)'}. ` +
    'Latency: producer publish to client receive, one monotonic clock. CPU µs / update: utime+stime of the server process per delivered update. ' +
    `RSS / sub: VmRSS growth from idle to all subscribed, per subscription.${results.params.quick ? " **Quick mode: tiny sizes, not the issue's figures.**" : ''} Run took ${results.durationS} s.\n`;
  for (const scenario of ['S1', 'S2', 'S3', 'S4', 'S5', 'S6'] as const) out += scenarioTable(results, scenario);
  out += documentsTable(results);
  if (results.storm) out += printStorm(results.storm);
  out += answersTable(results);
  out += clusterTable(results);
  out += '\n### Targets\n\n| figure | target | measured | status |\n| --- | --- | --- | --- |\n';
  for (const t of targets(results)) out += `| ${t.figure} | ${t.target} | ${t.measured} | ${t.status} |\n`;
  const loadLimited = results.rows.filter((r) => (r.clientCpuPercent ?? 0) >= 90);
  if (loadLimited.length) {
    out += `\nLoad client at ≥ 90% CPU (it, not the server, may be the limit): ${loadLimited.map((r) => `${r.scenario} ${r.server}`).join(', ')}.\n`;
  }
  if (results.profile) {
    const p = results.profile;
    out += `\n### Where Herald's time goes (${results.params.profile} under --cpu-prof, ${p.window})\n\n${num(p.totalMs)} ms of samples, ${num(p.usPerUpdate, 1)} µs per delivered update.\n\n`;
    out += '| self % | self ms | function | where |\n| ---: | ---: | --- | --- |\n';
    for (const f of p.functions) out += `| ${f.percent.toFixed(1)} | ${num(f.ms)} | ${f.name} | ${f.where} |\n`;
    out += '\n| self % | package / area |\n| ---: | --- |\n';
    for (const g of p.groups) out += `| ${g.percent.toFixed(1)} | ${g.name} |\n`;
  }
  return out;
}

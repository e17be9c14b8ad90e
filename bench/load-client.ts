/**
 * The load client (a child of bench/run.ts, pinned beside Redis and the producer). One `ws`
 * connection per subscription, graphql-transport-ws frames written by hand, and a scan of each
 * frame's bytes for `"seq":` and `"bt":` instead of a JSON.parse, so the client stays lean enough
 * not to be the limit before the servers are. It checks every subscription's seqs (lost,
 * duplicated, out of order) and measures publish-to-receive latency on the producer's clock.
 */
import WebSocket from 'ws';
import { nth } from '../test/helpers/elements.js';
import {
  LATENCY_BUCKET_US,
  nowUs,
  serveRequests,
  sleep,
  type ClientReport,
  type ServerKind,
  type SubscriptionSpec,
} from './shared.js';

const NEXT = Buffer.from('"type":"next"');
const SEQ = Buffer.from('"seq":');
const SENT = Buffer.from('"bt":');
/** Latency histogram: 10 µs buckets up to 20 s, the last bucket holding everything later. */
const BUCKET_US = LATENCY_BUCKET_US;
const BUCKETS = 2_000_000;

interface Connection {
  socket: WebSocket;
  topic: number;
  variables: Record<string, unknown>;
  acked: boolean;
  /** Received at least one update (a prime): the subscription is live. */
  ready: boolean;
  lastSeq: number;
  /** The last seq before the measurement started. */
  base: number;
  /** Seqs skipped over, that may still arrive late (then they are out of order, not lost). */
  missing: Set<number> | null;
  received: number;
  duplicated: number;
  outOfOrder: number;
  completed: boolean;
  /** Resume: the seq at which it has caught up, and when it did. */
  target: number;
  caughtUpUs: number;
  /** End to end: the seq of the terminal update, once seen. */
  finalSeq: number;
}

let kind: ServerKind = 'raw';
let query = '';
/** End to end: parse whole frames (status, ISO timestamp) instead of scanning for seq and bt. */
let fullParse = false;
let connections: Connection[] = [];
let measuring = false;
let histogram = new Uint32Array(BUCKETS);
let samples = 0;
let maxLatencyUs = 0;
let firstReceiveUs = 0;
let lastReceiveUs = 0;
let errors = 0;
let closed = 0;
let firstError = '';
let measureStartUs = 0;
let measureCpu = process.cpuUsage();
let resumeStartUs = 0;

function noteError(message: string): void {
  errors += 1;
  firstError ||= message.slice(0, 500);
}

/** Reads a non-negative integer written at `at` in the frame's bytes; -1 when there is none. */
function readInt(data: Buffer, at: number): number {
  let value = 0;
  let digits = 0;
  for (let i = at; i < data.length; i += 1) {
    const c = data[i]!;
    if (c < 48 || c > 57) break;
    value = value * 10 + (c - 48);
    digits += 1;
  }
  return digits === 0 ? -1 : value;
}

function recordLatency(us: number): void {
  if (us < 0) us = 0;
  const bucket = Math.min(Math.floor(us / BUCKET_US), BUCKETS - 1);
  histogram[bucket]! += 1;
  samples += 1;
  if (us > maxLatencyUs) maxLatencyUs = us;
}

function percentileMs(p: number): number {
  if (samples === 0) return 0;
  const rank = Math.ceil(samples * p);
  let seen = 0;
  for (let i = 0; i < BUCKETS; i += 1) {
    seen += histogram[i]!;
    if (seen >= rank) return ((i + 1) * BUCKET_US) / 1000;
  }
  return maxLatencyUs / 1000;
}

/** One update of one subscription: seq bookkeeping, then latency from its send time. */
function onUpdate(c: Connection, seq: number, latencyUs: number, now: number): void {
  if (!measuring) {
    c.ready = true;
    if (seq > c.lastSeq) c.lastSeq = seq;
    return;
  }
  // A baseline prime (seq 0) arriving late is not part of the measurement.
  if (seq === 0 && kind !== 'herald') return;
  if (seq > c.lastSeq) {
    if (seq > c.lastSeq + 1) {
      c.missing ??= new Set();
      // Bounded: a gap of more than 100,000 is counted as lost without remembering each seq.
      for (let s = Math.max(c.lastSeq + 1, seq - 100_000); s < seq; s += 1) c.missing.add(s);
    }
    c.lastSeq = seq;
  } else if (c.missing?.delete(seq)) {
    c.outOfOrder += 1;
  } else {
    c.duplicated += 1;
    return;
  }
  c.received += 1;
  if (firstReceiveUs === 0) firstReceiveUs = now;
  lastReceiveUs = now;
  if (c.target > 0 && c.caughtUpUs === 0 && c.lastSeq >= c.target && !c.missing?.size) {
    c.caughtUpUs = now;
    return;
  }
  if (c.target === 0) recordLatency(latencyUs);
}

function onFrame(c: Connection, data: Buffer): void {
  const now = nowUs();
  if (kind === 'raw') {
    const seq = readInt(data, data.indexOf(SEQ) + SEQ.length);
    const sent = readInt(data, data.indexOf(SENT) + SENT.length);
    if (seq < 0 || sent < 0) return noteError(`unexpected frame: ${data.toString().slice(0, 200)}`);
    return onUpdate(c, seq, now - sent, now);
  }
  const next = data.indexOf(NEXT);
  if (next !== -1 && next < 48 && !fullParse) {
    const seq = readInt(data, data.indexOf(SEQ) + SEQ.length);
    const sent = readInt(data, data.indexOf(SENT) + SENT.length);
    if (seq >= 0 && sent >= 0) return onUpdate(c, seq, now - sent, now);
  }
  const message = JSON.parse(data.toString()) as {
    type: string;
    payload?:
      { data?: Record<string, { seq: number; status: string; timestamp: string } | null>; errors?: unknown[] } | unknown[];
  };
  switch (message.type) {
    case 'connection_ack':
      c.acked = true;
      return;
    case 'ping':
      c.socket.send('{"type":"pong"}');
      return;
    case 'next': {
      const payload = message.payload as {
        data?: Record<string, { seq: number; status: string; timestamp: string } | null>;
        errors?: unknown[];
      };
      if (payload.errors) return noteError(JSON.stringify(payload.errors));
      const update = payload.data ? Object.values(payload.data)[0] : null;
      if (!update) return noteError(`next without data: ${data.toString().slice(0, 200)}`);
      // End to end: the worker stamps an ISO timestamp (ms), the only send time it writes.
      onUpdate(c, update.seq, Date.now() * 1000 - Date.parse(update.timestamp) * 1000, now);
      if (update.status === 'COMPLETED' || update.status === 'FAILED' || update.status === 'CANCELLED') c.finalSeq = update.seq;
      return;
    }
    case 'complete':
      c.completed = true;
      return;
    case 'error':
      return noteError(JSON.stringify(message.payload));
    default:
      return noteError(`unexpected frame ${message.type}`);
  }
}

function subscribeFrame(c: Connection): string {
  if (kind === 'raw') return JSON.stringify({ subscribe: c.variables.topic });
  return JSON.stringify({ id: '1', type: 'subscribe', payload: { query, variables: c.variables } });
}

function open(url: string, token: string, spec: SubscriptionSpec, subscribeNow: boolean): Promise<Connection> {
  return new Promise((resolve, reject) => {
    const protocol = kind === 'raw' ? undefined : 'graphql-transport-ws';
    const socket = new WebSocket(url, protocol, {
      perMessageDeflate: false,
      handshakeTimeout: 20_000,
      ...(spec.localAddress ? { localAddress: spec.localAddress } : {}),
    });
    const c: Connection = {
      socket,
      topic: spec.topic,
      variables: spec.variables,
      acked: kind === 'raw',
      ready: false,
      lastSeq: spec.base ?? 0,
      base: 0,
      missing: null,
      received: 0,
      duplicated: 0,
      outOfOrder: 0,
      completed: false,
      target: 0,
      caughtUpUs: 0,
      finalSeq: 0,
    };
    let settled = false;
    const timer = setTimeout(() => fail(new Error('no connection_ack within 20 s')), 20_000);
    function fail(error: Error) {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.terminate();
      reject(error);
    }
    function done() {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (subscribeNow) socket.send(subscribeFrame(c));
      resolve(c);
    }
    socket.on('error', (error) => fail(error));
    socket.on('open', () => {
      if (kind === 'raw') return done();
      socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } }));
    });
    socket.on('message', (data: Buffer) => {
      try {
        onFrame(c, data);
      } catch (error) {
        noteError(`bad frame: ${(error as Error).message}`);
      }
      if (!settled && c.acked) done();
    });
    socket.on('close', (code, reason) => {
      if (!settled) return fail(new Error(`closed ${code} ${reason.toString()}`));
      if (!closing) {
        closed += 1;
        noteError(`connection closed by the server: ${code} ${reason.toString()}`);
      }
    });
  });
}

let closing = false;

serveRequests({
  /** Opens one connection per spec, `concurrency` handshakes at a time; subscribes unless told to wait. */
  async connect(request: {
    kind: ServerKind;
    url: string;
    token: string;
    query: string;
    subscriptions: SubscriptionSpec[];
    subscribeNow: boolean;
    fullParse?: boolean;
    concurrency?: number;
  }) {
    kind = request.kind;
    query = request.query;
    fullParse = request.fullParse ?? false;
    closing = false;
    errors = 0;
    closed = 0;
    firstError = '';
    measuring = false;
    connections = [];
    const started = Date.now();
    const concurrency = request.concurrency ?? 100;
    const pending = request.subscriptions.entries();
    let failures = 0;
    let firstFailure = '';
    const opened = new Array<Connection>(request.subscriptions.length);
    async function lane() {
      // The lanes share one iterator, so each subscription is opened by exactly one of them.
      for (const [index, spec] of pending) {
        try {
          opened[index] = await open(request.url, request.token, spec, request.subscribeNow);
        } catch (error) {
          failures += 1;
          firstFailure ||= (error as Error).message;
        }
      }
    }
    await Promise.all(Array.from({ length: concurrency }, lane));
    connections = opened.filter(Boolean);
    return { opened: connections.length, failures, firstFailure, ms: Date.now() - started };
  },

  /** How many subscriptions are live, and which topics still have some that are not. */
  status() {
    const notReady = new Set<number>();
    let ready = 0;
    let received = 0;
    let completed = 0;
    let caughtUp = 0;
    for (const c of connections) {
      if (c.ready) ready += 1;
      else notReady.add(c.topic);
      received += c.received;
      if (c.completed) completed += 1;
      if (c.caughtUpUs > 0) caughtUp += 1;
    }
    return {
      total: connections.length,
      ready,
      received,
      completed,
      caughtUp,
      notReadyTopics: [...notReady],
      errors,
      closed,
      firstError,
    };
  },

  measure,

  /** Resume: measure, then send every subscribe at once; each has caught up at its base + `updates`. */
  resume(request: { updates: number }) {
    measure();
    for (const c of connections) c.target = c.lastSeq + request.updates;
    resumeStartUs = nowUs();
    for (const c of connections) c.socket.send(subscribeFrame(c));
    return { startUs: resumeStartUs };
  },

  report,

  /** How many subscriptions have not yet received seq `latest[topic]` of their topic. */
  behind(request: { latest: number[] }) {
    return connections.filter((c) => c.lastSeq < nth(request.latest, c.topic)).length;
  },

  /**
   * Moves every connection's subscription to a new one (`subscriptions[i]` for connection i): a
   * complete, then a subscribe under the same id, so each connection still holds exactly one.
   */
  resubscribe(request: { subscriptions: SubscriptionSpec[] }) {
    connections.forEach((c, index) => {
      const spec = nth(request.subscriptions, index);
      c.socket.send('{"id":"1","type":"complete"}');
      c.topic = spec.topic;
      c.variables = spec.variables;
      c.ready = false;
      c.lastSeq = spec.base ?? 0;
      c.socket.send(subscribeFrame(c));
    });
    return { resubscribed: connections.length };
  },

  async close() {
    closing = true;
    for (const c of connections) c.socket.close(1000);
    const deadline = Date.now() + 5_000;
    while (connections.some((c) => c.socket.readyState !== WebSocket.CLOSED) && Date.now() < deadline) await sleep(20);
    for (const c of connections) c.socket.terminate();
    connections = [];
    return true;
  },
});

/** Starts a measurement: everything received from now on is counted after each subscription's last seq. */
function measure() {
  measuring = true;
  histogram = new Uint32Array(BUCKETS);
  samples = 0;
  maxLatencyUs = 0;
  firstReceiveUs = 0;
  lastReceiveUs = 0;
  for (const c of connections) {
    c.received = 0;
    c.duplicated = 0;
    c.outOfOrder = 0;
    c.missing = null;
    c.base = c.lastSeq;
  }
  measureStartUs = nowUs();
  measureCpu = process.cpuUsage();
  return { startUs: measureStartUs };
}

/**
 * Ends the measurement. `expected[topic]` is how many updates each topic got (a subscription's due).
 * `buckets` adds the latency histogram's non-empty buckets, so several clients' latencies can be merged.
 */
function report(request: { expected?: number[]; buckets?: boolean }): ClientReport {
  const cpu = process.cpuUsage(measureCpu);
  const wallUs = Math.max(nowUs() - measureStartUs, 1);
  let received = 0;
  let lost = 0;
  const gaps = 0;
  let duplicated = 0;
  let outOfOrder = 0;
  let completed = 0;
  let caughtUp = 0;
  let lastCaughtUpUs = 0;
  const catchUps: number[] = [];
  for (const c of connections) {
    received += c.received;
    duplicated += c.duplicated;
    outOfOrder += c.outOfOrder;
    if (c.completed) completed += 1;
    // Due: what the producer says it published to the topic; end to end, everything up to the
    // terminal update (or, for a stream that never ended, up to the last seq seen).
    const due = request.expected ? nth(request.expected, c.topic) : (c.finalSeq || c.lastSeq) - c.base;
    lost += Math.max(0, due - c.received);
    if (c.caughtUpUs > 0) {
      caughtUp += 1;
      catchUps.push((c.caughtUpUs - resumeStartUs) / 1000);
      if (c.caughtUpUs > lastCaughtUpUs) lastCaughtUpUs = c.caughtUpUs;
    }
  }
  measuring = false;
  const isResume = connections.some((c) => c.target > 0);
  let latencyMs: ClientReport['latencyMs'];
  if (isResume) {
    catchUps.sort((a, b) => a - b);
    const at = (p: number) => catchUps[Math.min(catchUps.length - 1, Math.max(0, Math.ceil(catchUps.length * p) - 1))] ?? 0;
    latencyMs = { p50: at(0.5), p95: at(0.95), p99: at(0.99), max: catchUps.at(-1) ?? 0, samples: catchUps.length };
  } else {
    latencyMs = { p50: percentileMs(0.5), p95: percentileMs(0.95), p99: percentileMs(0.99), max: maxLatencyUs / 1000, samples };
  }
  return {
    subscriptions: connections.length,
    received,
    lost,
    gaps,
    duplicated,
    outOfOrder,
    errors,
    closed,
    completed,
    firstReceiveUs,
    lastReceiveUs,
    latencyMs,
    cpuPercent: ((cpu.user + cpu.system) / wallUs) * 100,
    wallMs: wallUs / 1000,
    ...(isResume
      ? { allCaughtUpMs: caughtUp === connections.length ? (lastCaughtUpUs - resumeStartUs) / 1000 : null, caughtUp }
      : {}),
    ...(firstError ? { firstError } : {}),
    ...(request.buckets ? { buckets: nonEmptyBuckets() } : {}),
  };
}

/** The latency histogram as [bucket, count] pairs, empty buckets left out. */
function nonEmptyBuckets(): Array<[number, number]> {
  const pairs: Array<[number, number]> = [];
  histogram.forEach((count, bucket) => {
    if (count > 0) pairs.push([bucket, count]);
  });
  return pairs;
}

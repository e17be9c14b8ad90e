/**
 * What the bench's processes share: one clock, the message shapes between the runner and its
 * children, and a small request/reply layer over Node's IPC channel.
 */

/**
 * Microseconds of CLOCK_MONOTONIC (libuv's hrtime). Every process on the machine reads the same
 * clock, so a send time stamped by the producer and a receive time read by the load client are
 * directly comparable, with no wall-clock adjustment in between.
 */
export function nowUs(): number {
  const [seconds, nanoseconds] = process.hrtime();
  return seconds * 1_000_000 + Math.floor(nanoseconds / 1_000);
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The width of the load client's latency histogram buckets, in µs. */
export const LATENCY_BUCKET_US = 10;

/** The three servers under test. */
export type ServerKind = 'herald' | 'raw' | 'stock';

/** Channel (raw, stock) of a topic; Herald's channels come from its own key layout. */
export const baselineChannel = (topic: string) => `bench:file:${topic}`;

/**
 * The payload raw and stock forward, and what Herald's update carries: eight fields, with the
 * send time (`data.bt`, µs on nowUs's clock) where all three servers pass it through untouched.
 */
export function updateFields(topic: string, seq: number, sentUs: number, timestamp: string): string {
  return (
    `{"fileId":"${topic}","seq":${seq},"event":"bench_progress","status":"PROCESSING","progress":${seq % 100},` +
    `"message":"step ${seq}","timestamp":"${timestamp}","data":{"bt":${sentUs}}}`
  );
}

/** Herald's update input (the store adds seq, epoch, kind and id). */
export function heraldUpdate(n: number, sentUs: number, timestamp: string, event = 'bench_progress'): string {
  return (
    `{"event":"${event}","status":"PROCESSING","progress":${n % 100},"message":"step ${n}",` +
    `"timestamp":"${timestamp}","data":{"bt":${sentUs}}}`
  );
}

interface Request {
  rpc: number;
  type: string;
  [key: string]: unknown;
}

interface Reply {
  rpc: number;
  ok: boolean;
  result?: unknown;
  error?: string;
}

/** Child side: answers the runner's requests with the handler of each request type. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- each handler declares its own request type
export function serveRequests(handlers: Record<string, (request: any) => unknown>): void {
  if (!process.send) throw new Error('this process must be started by bench/run.ts (it needs an IPC channel)');
  process.on('message', (message: Request) => {
    const handler = handlers[message.type];
    Promise.resolve()
      .then(() => {
        if (!handler) throw new Error(`unknown request ${message.type}`);
        return handler(message);
      })
      .then(
        (result) => process.send!({ rpc: message.rpc, ok: true, result } satisfies Reply),
        (error: Error) => process.send!({ rpc: message.rpc, ok: false, error: error.stack ?? String(error) } satisfies Reply),
      );
  });
  // The runner going away (crash, Ctrl-C) takes the child with it.
  process.on('disconnect', () => process.exit(0));
}

/** Runner side: one child process answering requests. */
export interface Peer {
  call<T = unknown>(type: string, payload?: Record<string, unknown>, timeoutMs?: number): Promise<T>;
}

export function createPeer(child: import('node:child_process').ChildProcess, name: string): Peer {
  let next = 1;
  const waiting = new Map<number, { resolve(value: unknown): void; reject(error: Error): void; timer: NodeJS.Timeout }>();
  child.on('message', (reply: Reply) => {
    const entry = waiting.get(reply.rpc);
    if (!entry) return;
    waiting.delete(reply.rpc);
    clearTimeout(entry.timer);
    if (reply.ok) entry.resolve(reply.result);
    else entry.reject(new Error(`${name}: ${reply.error}`));
  });
  let gone: string | null = null;
  child.on('error', (error) => {
    gone ??= error.message;
  });
  child.on('exit', (code, signal) => {
    gone ??= `exited (${code ?? signal})`;
    for (const [, entry] of waiting) {
      clearTimeout(entry.timer);
      entry.reject(new Error(`${name} exited (${code ?? signal}) while a request was pending`));
    }
    waiting.clear();
  });
  return {
    call<T>(type: string, payload: Record<string, unknown> = {}, timeoutMs = 120_000): Promise<T> {
      const rpc = next++;
      if (gone || !child.connected)
        return Promise.reject(new Error(`${name} is gone: ${gone ?? 'IPC channel closed'}; see bench/results/logs/`));
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting.delete(rpc);
          reject(new Error(`${name}: no answer to ${type} within ${timeoutMs} ms`));
        }, timeoutMs);
        waiting.set(rpc, { resolve, reject, timer });
        child.send({ rpc, type, ...payload });
      });
    },
  };
}

/** One subscription the load client opens, on a connection of its own. */
export interface SubscriptionSpec {
  /** Index into the producer's topics; identifies what the subscription should receive. */
  topic: number;
  /** Herald, stock: GraphQL variables; raw: { topic }. */
  variables: Record<string, unknown>;
  /** Resume: the seq of the cursor it resumes after. */
  base?: number;
  /** The source address to connect from (one address has only about 28,000 ephemeral ports to a server port). */
  localAddress?: string;
}

/** What the load client measured between `measure` and `report`. */
export interface ClientReport {
  subscriptions: number;
  /** Distinct updates received. */
  received: number;
  /** Due but never received: skipped-over seqs (gaps) plus the tail after the last seq received. */
  lost: number;
  /** Seqs skipped over and never filled. */
  gaps: number;
  duplicated: number;
  outOfOrder: number;
  /** Protocol errors and unexpected closes. */
  errors: number;
  closed: number;
  completed: number;
  firstReceiveUs: number;
  lastReceiveUs: number;
  latencyMs: { p50: number; p95: number; p99: number; max: number; samples: number };
  cpuPercent: number;
  wallMs: number;
  /** Resume only: when every subscription had caught up, ms after the subscribes were sent. */
  allCaughtUpMs?: number | null;
  caughtUp?: number;
  firstError?: string;
  /** When asked for: the latency histogram's non-empty buckets, [bucket of 10 µs, count]. */
  buckets?: Array<[number, number]>;
}

/** What the producer did in one `run`. */
export interface ProducerReport {
  published: number;
  /** Updates published per topic index. */
  perTopic: number[];
  startUs: number;
  endUs: number;
  achievedRate: number;
  cpuPercent: number;
  failed: number;
}

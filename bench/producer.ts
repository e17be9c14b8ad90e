/**
 * The load producer (a child of bench/run.ts, pinned beside Redis and the load client). For Herald
 * it appends through the shipped append.lua exactly as docs/protocol.md says, the updates due in one
 * tick in one call; for raw and stock it PUBLISHes the payload those servers forward, one command
 * per update. Every update carries its send time (`data.bt`).
 */
import { Redis } from 'ioredis';
import { createResourceRegistry } from '../src/resources/registry.js';
import { resourceStream } from '../src/updates/keys.js';
import { APPEND_SCRIPT } from '../src/updates/store.js';
import { nth } from '../test/helpers/elements.js';
import {
  baselineChannel,
  heraldUpdate,
  nowUs,
  serveRequests,
  sleep,
  updateFields,
  type ProducerReport,
  type ServerKind,
} from './shared.js';

/** Commands Redis may have waiting before the producer stops adding more (it then falls behind, visibly). */
const MAX_IN_FLIGHT = 20_000;
const HISTORY_LIMIT = '1000';
/** Most updates in one append.lua call, as Herald's own store sends them. */
const MAX_BATCH = 256;
const TTL_SECONDS = 3600;

type AppendRedis = Redis & {
  heraldAppend(numberOfKeys: number, ...keysAndArgs: string[]): Promise<string | null | Array<string | null>>;
};

interface Topic {
  id: string;
  channel: string;
  /** Herald only. */
  meta: string;
  history: string;
  appendIds: string;
  members: string;
  epoch: string;
  /** Raw, stock: the seq the producer numbers the topic's updates with. */
  seq: number;
}

let redis: AppendRedis | null = null;
let kind: ServerKind = 'raw';
let topics: Topic[] = [];
let inFlight = 0;
let failed = 0;
let firstFailure = '';

/** A valid sampled W3C traceparent, distinct per topic. */
function traceparentOf(index: number): string {
  const hex = (index + 1).toString(16);
  return `00-${hex.padStart(32, 'a')}-${hex.padStart(16, 'b')}-01`;
}

function connection(): AppendRedis {
  if (!redis) throw new Error('init first');
  return redis;
}

function onSettled(updates: number): void {
  inFlight -= updates;
}

function onFailed(updates: number, error: Error): void {
  inFlight -= updates;
  failed += updates;
  firstFailure ||= error.message;
}

/**
 * Publishes one update per listed topic; the send time is taken right before the command is queued.
 * Herald's go in calls of up to MAX_BATCH updates; resolves with Herald's stored entries (or nulls).
 */
function publish(batch: Topic[], event = 'bench_progress'): Promise<Array<string | null>> {
  const r = connection();
  const sent: Array<Promise<Array<string | null>>> = [];
  if (kind === 'herald') {
    for (let i = 0; i < batch.length; i += MAX_BATCH) {
      const chunk = batch.slice(i, i + MAX_BATCH);
      const keys: string[] = [];
      const args: string[] = [HISTORY_LIMIT, String(TTL_SECONDS), 'PUBLISH'];
      const sentUs = nowUs();
      const timestamp = new Date().toISOString();
      for (const topic of chunk) {
        topic.seq += 1;
        keys.push(topic.meta, topic.history, topic.appendIds);
        args.push(topic.epoch, topic.members, heraldUpdate(topic.seq, sentUs, timestamp, event), '0', topic.channel);
        args.push(`${topic.id}:${topic.seq}`, '', '', '', '');
      }
      inFlight += chunk.length;
      const call = r.heraldAppend(keys.length, ...keys, ...args).then((reply) => (Array.isArray(reply) ? reply : [reply]));
      call.then(
        () => onSettled(chunk.length),
        (error: Error) => onFailed(chunk.length, error),
      );
      sent.push(call);
    }
  } else {
    for (const topic of batch) {
      const sentUs = nowUs();
      topic.seq += 1;
      const payload = updateFields(topic.id, event === 'prime' ? 0 : topic.seq, sentUs, new Date().toISOString());
      if (event === 'prime') topic.seq -= 1;
      inFlight += 1;
      const call = r.publish(topic.channel, payload).then(() => [null]);
      call.then(
        () => onSettled(1),
        (error: Error) => onFailed(1, error),
      );
      sent.push(call);
    }
  }
  return Promise.all(sent).then((replies) => replies.flat());
}

async function drain(deadlineUs: number): Promise<void> {
  while (inFlight > 0 && nowUs() < deadlineUs) await sleep(2);
}

serveRequests({
  async init(request: {
    kind: ServerKind;
    redisUrl: string;
    keyPrefix: string;
    topics: string[];
    owner: string;
    /** Each Herald update carries a W3C traceparent (one sampled trace per topic), as a traced producer's do. */
    traced: boolean;
  }) {
    redis?.disconnect();
    kind = request.kind;
    redis = new Redis(request.redisUrl, { enableAutoPipelining: true, maxRetriesPerRequest: 3 }) as AppendRedis;
    redis.defineCommand('heraldAppend', { lua: APPEND_SCRIPT });
    topics = request.topics.map((id, index) => {
      const stream = resourceStream(request.keyPrefix, { kind: 'file', id });
      return {
        id,
        channel: kind === 'herald' ? stream.channel : baselineChannel(id),
        meta: stream.meta,
        history: stream.history,
        appendIds: stream.appendIds,
        members: `"kind":"file","id":"${id}"` + (request.traced ? `,"traceparent":"${traceparentOf(index)}"` : ''),
        epoch: `b${(index + 1).toString(16).padStart(15, '0')}`,
        seq: 0,
      };
    });
    if (kind === 'herald') {
      // The resource records Herald authorizes subscriptions by, written by Herald's own registry.
      const registry = createResourceRegistry(redis, request.keyPrefix, TTL_SECONDS);
      const createdAt = new Date().toISOString();
      for (let i = 0; i < topics.length; i += 500) {
        await Promise.all(
          topics
            .slice(i, i + 500)
            .map((t) =>
              registry.create({ kind: 'file', id: t.id, ownerId: request.owner, projectId: null, name: t.id, createdAt }),
            ),
        );
      }
    }
    return { topics: topics.length };
  },

  /** One update on each listed topic, so the runner can tell when every subscription is live. */
  async prime(request: { topics: number[] }) {
    const replies = await publish(
      request.topics.map((index) => nth(topics, index)),
      'prime',
    );
    // Herald returns the stored entry: its seq and epoch are what a resume cursor names.
    return kind === 'herald'
      ? replies.map((reply) => {
          const entry = JSON.parse(String(reply)) as { seq: number; epoch: string };
          return { seq: entry.seq, epoch: entry.epoch };
        })
      : replies.map(() => ({ seq: 0, epoch: '' }));
  },

  /** `perTopic` updates on every topic, as fast as Redis takes them (resume scenarios). */
  async burst(request: { perTopic: number }) {
    const start = nowUs();
    for (let round = 0; round < request.perTopic; round += 1) {
      for (let i = 0; i < topics.length; i += MAX_BATCH) {
        while (inFlight >= MAX_IN_FLIGHT) await sleep(1);
        publish(topics.slice(i, i + MAX_BATCH)).catch(() => undefined);
      }
    }
    await drain(start + 120e6);
    return { published: request.perTopic * topics.length, ms: (nowUs() - start) / 1000, failed, firstFailure };
  },

  /** Publishes `rate` updates a second for `durationMs`, round-robin over the topics (or a subset). */
  async run(request: { rate: number; durationMs: number }): Promise<ProducerReport & { firstFailure: string }> {
    const { rate, durationMs } = request;
    const total = Math.max(1, Math.round((rate * durationMs) / 1000));
    const perTopic = new Array<number>(topics.length).fill(0);
    const cpuStart = process.cpuUsage();
    failed = 0;
    firstFailure = '';
    const startUs = nowUs();
    // Time-bounded: a producer that cannot keep up stops at twice the duration plus 5 s.
    const hardStopUs = startUs + (durationMs * 2 + 5_000) * 1000;
    let sent = 0;
    let next = 0;
    while (sent < total) {
      const now = nowUs();
      if (now > hardStopUs) break;
      const due = Math.min(total, Math.floor(((now - startUs) * rate) / 1e6)) - sent;
      const batch: Topic[] = [];
      for (let k = 0; k < due && inFlight + batch.length < MAX_IN_FLIGHT; k += 1) {
        batch.push(topics[next]!);
        perTopic[next]! += 1;
        next = next + 1 === topics.length ? 0 : next + 1;
        sent += 1;
      }
      publish(batch).catch(() => undefined);
      await sleep(1);
    }
    const lastSendUs = nowUs();
    await drain(lastSendUs + 30e6);
    const endUs = nowUs();
    const cpu = process.cpuUsage(cpuStart);
    return {
      published: sent,
      perTopic,
      startUs,
      endUs: lastSendUs,
      achievedRate: sent / Math.max((lastSendUs - startUs) / 1e6, 1e-3),
      cpuPercent: ((cpu.user + cpu.system) / Math.max(endUs - startUs, 1)) * 100,
      failed,
      firstFailure,
    };
  },

  async close() {
    redis?.disconnect();
    redis = null;
    return true;
  },
});

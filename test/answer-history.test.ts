import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RecentUpdatesDocument, StartQueryDocument } from '../src/client/generated.js';
import { startWorkers } from '../src/jobs/workers.js';
import { createLogger } from '../src/logger.js';
import { nth } from './helpers/elements.js';
import { startHerald, type Herald } from './helpers/herald.js';
import { metricValue, scrape } from './helpers/metrics.js';
import { connect } from './helpers/redis.js';
import { collect } from './helpers/streams.js';

interface AnswerItem {
  seq: number;
  cursor: string;
  event: string;
  token: string | null;
  text: string | null;
}

const ANSWER_FIELDS = 'seq cursor event token text';
const QUERY_PROGRESS = `subscription ($queryId: ID!, $after: String) { queryProgress(queryId: $queryId, after: $after) { ${ANSWER_FIELDS} } }`;
const PROJECT_PROGRESS = `subscription ($projectId: ID!, $after: String) {
  projectProgress(projectId: $projectId, after: $after) { update { seq event ... on QueryUpdate { queryId token text } } }
}`;

/** Deterministic "random" cursors, so a failure names the same ones on every run. */
function picker(seed: number): (n: number) => number {
  let state = seed;
  return (n) => {
    state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
    return state % n;
  };
}

/** What `text` must be on each item: every token of the attempt so far (a new attempt starts again at `generating`). */
function expectedTexts(items: readonly AnswerItem[]): Map<number, string | null> {
  const texts = new Map<number, string | null>();
  let text = '';
  for (const item of items) {
    if (item.event === 'generating') text = '';
    if (item.event === 'token') text += item.token ?? '';
    texts.set(item.seq, item.event === 'token' || item.event === 'done' ? text : null);
  }
  return texts;
}

const redis = connect();
let herald: Herald;
let small: Herald;
let token: string;
const workers: Array<Awaited<ReturnType<typeof startWorkers>>> = [];

async function withWorkers(env: Record<string, string>): Promise<Herald> {
  const started = await startHerald({ TOKEN_FLUSH_TOKENS: '8', TOKEN_FLUSH_MS: '10000', ...env }, { workers: false });
  workers.push(
    await startWorkers(started.config, createLogger('silent', 'test'), {
      generator: new URL('./helpers/test-generator.ts', import.meta.url),
    }),
  );
  return started;
}

beforeAll(async () => {
  herald = await withWorkers({ HISTORY_LIMIT: '1000', REPLAY_ON_CONNECT: '1000' });
  small = await withWorkers({ HISTORY_LIMIT: '20' });
  token = await herald.token({ sub: 'quinn', projects: ['answers'] });
});

afterAll(async () => {
  await Promise.all(workers.map((w) => w.close()));
  await Promise.all([herald?.stop(), small?.stop()]);
  redis.disconnect();
});

async function startQuery(on: Herald, question: string, projectId?: string) {
  const viewer = on === herald ? token : await on.token({ sub: 'quinn', projects: ['answers'] });
  const { body } = await on.http(viewer, StartQueryDocument, { input: { question, projectId } });
  expect(body.errors).toBeUndefined();
  return { ...body.data!.startQuery, viewer };
}

function watch(on: Herald, viewer: string, transport: 'ws' | 'sse', queryId: string, after: string | null) {
  const client = transport === 'ws' ? on.ws(viewer) : on.sse(viewer);
  return collect<AnswerItem>(client, QUERY_PROGRESS, { queryId, after }, { field: 'queryProgress', timeoutMs: 30_000 });
}

/** Bytes of Redis memory a query's stream takes: every key of its hash tag (meta, history, append ids, body). */
async function historyBytes(on: Herald, queryId: string): Promise<number> {
  const keys = await redis.keys(`${on.config.keyPrefix}*{query:${queryId}}`);
  expect(keys.length).toBeGreaterThanOrEqual(3);
  const sizes = await Promise.all(keys.map((key) => redis.memory('USAGE', key, 'SAMPLES', 0)));
  return sizes.reduce<number>((sum, size) => sum + (size ?? 0), 0);
}

describe('answer history', () => {
  it('grows linearly with the answer: a 2,000-token answer takes about 4 times the bytes of a 500-token one', async () => {
    const bytes: number[] = [];
    for (const tokens of [500, 2000]) {
      const { queryId, cursor, viewer } = await startQuery(herald, `answer ${tokens}`);
      const run = await watch(herald, viewer, 'ws', queryId, cursor);
      expect(run.completed).toBe(true);
      expect(run.items.filter((item) => item.event === 'token')).toHaveLength(Math.ceil(tokens / 8));
      bytes.push(await historyBytes(herald, queryId));
    }
    const [short, long] = [nth(bytes, 0), nth(bytes, 1)];
    // About 4.6 (34 KB and 158 KB), the later tokens being a digit longer; each update carrying the
    // whole answer so far made it about 14 (120 KB and 1.67 MB).
    expect(long / short).toBeLessThan(6);
    expect(long).toBeLessThan(2000 * 100);
  });

  it('gives a client resuming from any cursor the right text on every update, live and from history, across a retry', async () => {
    const liveBefore = metricValue(await scrape(herald.url), 'herald_updates_live_total') ?? 0;
    const { queryId, cursor, viewer } = await startQuery(herald, 'fail then answer 1200');
    const resumers: Array<Promise<{ from: number; items: AnswerItem[] }>> = [];
    const pick = picker(14);
    const whole = collect<AnswerItem>(
      herald.ws(viewer),
      QUERY_PROGRESS,
      { queryId, after: cursor },
      {
        field: 'queryProgress',
        timeoutMs: 30_000,
        until: (items) => {
          // Joins mid-answer at a cursor already seen: history first, then live tokens.
          if (items.length % 20 === 5) {
            const from = nth(items, pick(items.length));
            const run = watch(herald, viewer, resumers.length % 2 === 0 ? 'ws' : 'sse', queryId, from.cursor);
            resumers.push(run.then((r) => ({ from: from.seq, items: r.items })));
          }
          return false;
        },
      },
    );
    const reference = (await whole).items;
    expect(reference.map((item) => item.event)).toContain('attempt_failed');
    expect(reference.at(-1)?.event).toBe('done');
    const texts = expectedTexts(reference);
    for (const item of reference) expect(item.text).toBe(texts.get(item.seq));
    // Live token updates extend the text a subscription holds: none of them needed a history read.
    const tokens = reference.filter((item) => item.event === 'token').length;
    expect((metricValue(await scrape(herald.url), 'herald_updates_live_total') ?? 0) - liveBefore).toBeGreaterThanOrEqual(tokens);

    // And after the end, from cursors anywhere in it.
    for (let i = 0; i < 6; i += 1) {
      const from = nth(reference, pick(reference.length));
      resumers.push(
        watch(herald, viewer, i % 2 === 0 ? 'ws' : 'sse', queryId, from.cursor).then((r) => ({ from: from.seq, items: r.items })),
      );
    }
    const results = await Promise.all(resumers);
    expect(results.length).toBeGreaterThan(10);
    for (const { from, items } of results) {
      expect(items.map((item) => item.seq)).toEqual(reference.filter((item) => item.seq > from).map((item) => item.seq));
      for (const item of items) expect(item.text, `seq ${item.seq} resumed after ${from}`).toBe(texts.get(item.seq));
    }
  });

  it('keeps text whole when the history kept is shorter than the answer, and in recentUpdates', async () => {
    const { queryId, cursor, viewer } = await startQuery(small, 'answer 400');
    const whole = await watch(small, viewer, 'ws', queryId, cursor);
    const texts = expectedTexts(whole.items);
    const done = whole.items.at(-1)!;
    expect(done.event).toBe('done');
    expect(done.text).toBe(texts.get(done.seq));
    expect(done.text!.length).toBeGreaterThan(1500);

    const trimmed = await watch(small, viewer, 'sse', queryId, cursor);
    expect(trimmed.items[0]?.event).toBe('history_gap');
    expect(trimmed.items.length).toBe(21);
    for (const item of trimmed.items.slice(1)) expect(item.text).toBe(texts.get(item.seq));

    const { body } = await small.http(viewer, RecentUpdatesDocument, { kind: 'QUERY', id: queryId, limit: 5 });
    const recent = body.data!.recentUpdates;
    expect(recent.map((item) => item.seq)).toEqual(whole.items.slice(-5).map((item) => item.seq));
    for (const item of recent) expect('text' in item ? item.text : undefined).toBe(texts.get(item.seq));
  });

  it('gives projectProgress the text of the query updates it carries', async () => {
    const { queryId, cursor, viewer } = await startQuery(herald, 'answer 120', 'answers');
    expect((await watch(herald, viewer, 'ws', queryId, cursor)).completed).toBe(true);
    // The project's entries carry body ranges, not text: it is read from the query's body.
    const project = await collect<{ update: AnswerItem & { queryId?: string } }>(
      herald.sse(viewer),
      PROJECT_PROGRESS,
      { projectId: 'answers', after: null },
      { field: 'projectProgress', until: (items) => items.some((item) => item.update.event === 'done'), timeoutMs: 30_000 },
    );
    const items = project.items.map((item) => item.update).filter((update) => update.queryId === queryId);
    const texts = expectedTexts(items);
    expect(items.filter((item) => item.event === 'token')).toHaveLength(15);
    for (const item of items) expect(item.text).toBe(texts.get(item.seq));
  });
});

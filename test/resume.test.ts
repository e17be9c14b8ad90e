import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileProgressDocument, StartFileProcessingDocument, type FileProgressSubscription } from '../src/client/generated.js';
import { decodeCursor } from '../src/updates/cursor.js';
import { createUpdateStore } from '../src/updates/store.js';
import { makeDocument } from './helpers/documents.js';
import { nth } from './helpers/elements.js';
import { startHerald, type Herald } from './helpers/herald.js';
import { metricValue, scrape } from './helpers/metrics.js';
import { connect } from './helpers/redis.js';
import { collect } from './helpers/streams.js';

type FileUpdate = FileProgressSubscription['fileProgress'];

const redis = connect();
let herald: Herald;
let token: string;

beforeAll(async () => {
  herald = await startHerald({ CHUNK_CHARS: '120', CLASSIFY_BATCH: '2', PROGRESS_UPDATES: '10000', HISTORY_LIMIT: '5000' });
  token = await herald.token('rita');
});
afterAll(async () => {
  await herald?.stop();
  redis.disconnect();
});

async function startFile(h: Herald, content: string) {
  const { body } = await h.http(token, StartFileProcessingDocument, { input: { name: 'big.md', content } });
  return body.data!.startFileProcessing;
}

/** Updates the API has handed to subscribers as pub/sub delivered them (not from a replay). */
async function liveDeliveries(): Promise<number> {
  return metricValue(await scrape(herald.url), 'herald_updates_live_total') ?? 0;
}

function watch(
  h: Herald,
  transport: 'ws' | 'sse',
  fileId: string,
  after: string | null,
  until?: (items: FileUpdate[]) => boolean,
) {
  const client = transport === 'ws' ? h.ws(token) : h.sse(token);
  return collect<FileUpdate>(
    client,
    FileProgressDocument,
    { fileId, after },
    { field: 'fileProgress', until, timeoutMs: 60_000 },
  );
}

describe('resuming', () => {
  it('gives every resumer exactly the updates after its cursor, once, in order, while the job publishes', async () => {
    const file = await startFile(herald, makeDocument(400));
    const reference: FileUpdate[] = [];
    const whole = watch(herald, 'ws', file.fileId, file.cursor, (items) => {
      reference.splice(0, reference.length, ...items);
      return false;
    });
    const resumers: Array<Promise<{ from: number; seqs: number[] }>> = [];
    for (let i = 0; i < 40; i += 1) {
      await new Promise((r) => setTimeout(r, 5 + Math.random() * 20));
      const pick = reference.length === 0 ? null : reference[Math.floor(Math.random() * reference.length)];
      const from = pick ? pick.seq : 0;
      const run = watch(herald, i % 2 === 0 ? 'ws' : 'sse', file.fileId, pick ? pick.cursor : file.cursor);
      resumers.push(run.then((r) => ({ from, seqs: r.items.map((u) => u.seq) })));
    }
    const all = (await whole).items;
    const last = all.at(-1)!.seq;
    expect(all.map((u) => u.seq)).toEqual(Array.from({ length: last }, (_, i) => i + 1));
    expect(last).toBeGreaterThan(500);
    const results = await Promise.all(resumers);
    const resumedMidway = results.filter((r) => r.from > 0 && r.from < last);
    expect(resumedMidway.length).toBeGreaterThan(5);
    for (const { from, seqs } of results) {
      expect(seqs).toEqual(Array.from({ length: last - from }, (_, i) => from + i + 1));
    }
  });
});

describe('history gaps', () => {
  it('says so in-band when the cursor is older than the history kept', async () => {
    const small = await startHerald({ HISTORY_LIMIT: '5', REPLAY_ON_CONNECT: '2', CHUNK_CHARS: '120' });
    try {
      const file = await startFile(small, makeDocument(6));
      const first = await watch(small, 'ws', file.fileId, null);
      const last = first.items.at(-1)!.seq;
      const run = await watch(small, 'sse', file.fileId, file.cursor);
      expect(run.items[0]).toMatchObject({
        event: 'history_gap',
        seq: last - 5,
        gap: { reason: 'TRIMMED', resumesAfter: last - 5 },
        status: 'COMPLETED',
      });
      expect(run.items.slice(1).map((u) => u.seq)).toEqual([1, 2, 3, 4, 5].map((k) => last - 5 + k));
      expect(run.completed).toBe(true);
      // The gap notice's own cursor resumes right where it says.
      const again = await watch(small, 'ws', file.fileId, nth(run.items, 0).cursor);
      expect(again.items.map((u) => u.seq)).toEqual(run.items.slice(1).map((u) => u.seq));
    } finally {
      await small.stop();
    }
  });

  it('tells a client whose cursor comes from a history Redis has since lost', async () => {
    const file = await startFile(herald, makeDocument(2));
    const first = await watch(herald, 'ws', file.fileId, file.cursor);
    const oldCursor = nth(first.items, 2).cursor;
    // Redis loses the resource's history (a flush, or a restore without AOF) ...
    const keys = await redis.keys(`${herald.config.keyPrefix}*${file.fileId}*`);
    await redis.del(...keys.filter((k) => k.includes('recent_updates') || k.includes('update_meta')));
    // ... and a producer goes on writing to it.
    const store = createUpdateStore(redis, { keyPrefix: herald.config.keyPrefix, historyLimit: 100, ttlSeconds: 60 });
    const ref = { kind: 'file' as const, id: file.fileId };
    await store.append(ref, { event: 'processing_started', status: 'PROCESSING' });
    // Once the gap notice and the one update there is have arrived, the stream is live: the next
    // update can only come through pub/sub, not the replay.
    let replayed = () => {};
    const caughtUp = new Promise<void>((resolve) => (replayed = resolve));
    const run = watch(herald, 'sse', file.fileId, oldCursor, (items) => {
      if (items.length === 2) replayed();
      return false;
    });
    await caughtUp;
    const liveBefore = await liveDeliveries();
    await store.append(ref, { event: 'processing_completed', status: 'COMPLETED' });
    const items = (await run).items;
    expect(await liveDeliveries()).toBe(liveBefore + 1);
    expect(items[0]).toMatchObject({ event: 'history_gap', gap: { reason: 'EPOCH_CHANGED', resumesAfter: 0 } });
    expect(items.slice(1).map((u) => [u.seq, u.event])).toEqual([
      [1, 'processing_started'],
      [2, 'processing_completed'],
    ]);
    expect(decodeCursor(nth(items, 1).cursor)!.epoch).not.toBe(decodeCursor(oldCursor)!.epoch);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FileProgressDocument,
  QueryProgressDocument,
  StartFileProcessingDocument,
  StartQueryDocument,
  type QueryProgressSubscription,
} from '../src/client/generated.js';
import { startHerald, type Herald } from './helpers/herald.js';
import { collect } from './helpers/streams.js';

type QueryUpdate = QueryProgressSubscription['queryProgress'];

let herald: Herald;
let token: string;

const GUIDE = [
  '# Redis',
  'Redis is an in-memory data store used as a cache and message broker.',
  'Sorted sets keep members ordered by a score.',
  'Pub/sub delivers messages to every subscriber of a channel.',
  '',
  '# Queues',
  'BullMQ is a queue library built on Redis.',
  'Workers take jobs from a queue and retry failed jobs with exponential backoff.',
].join('\n');

const COOKING = 'Bread needs flour, water, salt and yeast. Dough rises when yeast ferments sugar.';

beforeAll(async () => {
  herald = await startHerald({ TOKEN_FLUSH_TOKENS: '3', TOKEN_FLUSH_MS: '1000' });
  token = await herald.token('quinn');
});
afterAll(() => herald?.stop());

async function processFile(name: string, content: string): Promise<string> {
  const { body } = await herald.http(token, StartFileProcessingDocument, { input: { name, content } });
  const { fileId, cursor } = body.data!.startFileProcessing;
  const run = await collect(herald.ws(token), FileProgressDocument, { fileId, after: cursor }, { field: 'fileProgress' });
  expect(run.completed).toBe(true);
  return fileId;
}

async function ask(question: string, fileIds?: string[]) {
  const { body } = await herald.http(token, StartQueryDocument, { input: { question, fileIds } });
  expect(body.errors).toBeUndefined();
  const { queryId, cursor } = body.data!.startQuery;
  return collect<QueryUpdate>(herald.sse(token), QueryProgressDocument, { queryId, after: cursor }, { field: 'queryProgress' });
}

describe('queryProgress', () => {
  it('answers from the best sentences as a coalesced token stream, then done with sources', async () => {
    const guide = await processFile('guide.md', GUIDE);
    const cooking = await processFile('cooking.txt', COOKING);
    const run = await ask('How do workers retry failed jobs?', [guide, cooking]);
    expect(run.completed).toBe(true);
    const updates = run.items;
    expect(updates.map((u) => u.seq)).toEqual(updates.map((_, i) => i + 1));
    expect(updates.slice(0, 3).map((u) => u.event)).toEqual(['queued', 'retrieving', 'generating']);

    const tokens = updates.filter((u) => u.event === 'token');
    expect(tokens.length).toBeGreaterThan(2);
    let text = '';
    for (const update of tokens) {
      text += update.token;
      expect(update.text).toBe(text);
      expect(update.queryId).toBe(updates[0]?.queryId);
    }
    // Three tokens per update (TOKEN_FLUSH_TOKENS), the last one may carry fewer.
    expect(tokens.slice(0, -1).every((u) => u.token!.trim().split(/\s+/).length === 3)).toBe(true);

    const done = updates.at(-1)!;
    expect(done).toMatchObject({ event: 'done', status: 'COMPLETED', text });
    expect(text).toContain('Workers take jobs from a queue and retry failed jobs with exponential backoff. [1]');
    const data = done.data as { tokens: number; latencyMs: number; sources: Array<{ fileId: string; text: string }> };
    expect(data.sources[0]).toMatchObject({ fileId: guide });
    expect(data.sources.every((s) => s.fileId !== cooking)).toBe(true);
    expect(data.tokens).toBe(text.match(/\s*\S+/g)!.length);
    expect(data.latencyMs).toBeGreaterThanOrEqual(0);
  });

  it("searches all of the viewer's processed files when no fileIds are given", async () => {
    await processFile('bread.txt', COOKING);
    const run = await ask('What makes dough rise?');
    expect(run.items.at(-1)!.text).toContain('Dough rises when yeast ferments sugar. [1]');
  });

  it('never quotes the same passage twice, even when documents repeat it', async () => {
    const repeated = 'Workers retry failed jobs with exponential backoff.';
    const notes = [1, 2, 3].map((i) => `# Part ${i}\n${repeated}\nPart ${i} covers a different topic entirely.`).join('\n\n');
    const first = await processFile('notes.md', `${notes}\n\nA failed job is retried by the workers until attempts run out.`);
    const copy = await processFile('copy.md', `WORKERS  retry failed jobs with\nexponential backoff.`);
    const run = await ask('How do workers retry failed jobs?', [first, copy]);
    const done = run.items.at(-1)!;
    expect(done).toMatchObject({ event: 'done', status: 'COMPLETED' });
    const sources = (done.data as { sources: Array<{ text: string }> }).sources.map((s) => s.text.toLowerCase());
    expect(sources.length).toBeGreaterThan(1);
    expect(new Set(sources).size).toBe(sources.length);
    expect(done.text!.toLowerCase().split(repeated.toLowerCase())).toHaveLength(2);
  });

  it('says so when nothing in the documents matches', async () => {
    const fileId = await processFile('cooking.txt', COOKING);
    const run = await ask('quantum chromodynamics', [fileId]);
    expect(run.items.at(-1)).toMatchObject({ event: 'done', text: 'No relevant passage was found in the documents.' });
  });
});

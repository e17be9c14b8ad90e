import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileProgressDocument, StartFileProcessingDocument, type FileProgressSubscription } from '../src/client/generated.js';
import { makePlainText } from './helpers/documents.js';
import { nth } from './helpers/elements.js';
import { startHerald, type Herald } from './helpers/herald.js';
import { collect, errorCodes } from './helpers/streams.js';

type FileUpdate = FileProgressSubscription['fileProgress'];

const MB = 1024 * 1024;

const started: Herald[] = [];
afterAll(() => Promise.all(started.map((h) => h.stop())));

async function herald(env: Record<string, string> = {}) {
  const h = await startHerald({ HISTORY_LIMIT: '1000', ...env });
  started.push(h);
  return { h, token: await h.token('lee') };
}

/** Starts a document through the API and follows its stream over graphql-ws until it ends. */
async function run(h: Herald, token: string, content: string) {
  const { body } = await h.http(token, StartFileProcessingDocument, { input: { name: 'big.txt', content } });
  expect(body.errors).toBeUndefined();
  const { fileId, cursor } = body.data!.startFileProcessing;
  const result = await collect<FileUpdate>(
    h.ws(token),
    FileProgressDocument,
    { fileId, after: cursor },
    { field: 'fileProgress', timeoutMs: 150_000 },
  );
  expect(result.errors).toEqual([]);
  expect(result.completed).toBe(true);
  return result.items;
}

/** What a watcher receives: how many updates, how many bytes, the largest one. */
function volume(updates: FileUpdate[]) {
  const sizes = updates.map((u) => Buffer.byteLength(JSON.stringify(u)));
  return { updates: updates.length, bytes: sizes.reduce((sum, n) => sum + n, 0), largest: Math.max(...sizes) };
}

describe('large documents', () => {
  let h: Herald;
  let token: string;
  beforeAll(async () => ({ h, token } = await herald()));

  it('processes a 1 MB plain-text document to COMPLETED with a bounded stream, no larger than for a quarter of it', async () => {
    const volumes = [];
    for (const bytes of [MB / 4, MB]) {
      const document = makePlainText(bytes);
      const updates = await run(h, token, document.content);
      expect(updates.at(-1)).toMatchObject({ event: 'processing_completed', status: 'COMPLETED', progress: 100 });
      expect(updates.at(-1)!.data).toMatchObject({ sentences: document.sentences });
      expect(updates.filter((u) => u.event === 'extraction_progress').length).toBeLessThanOrEqual(h.config.jobs.progressUpdates);
      expect(updates.filter((u) => u.event === 'sentence_classification').length).toBeLessThanOrEqual(
        h.config.jobs.progressUpdates,
      );
      const progress = updates.map((u) => u.progress ?? 0);
      expect(progress).toEqual([...progress].sort((a, b) => a - b));
      volumes.push(volume(updates));
    }
    const [quarter, whole] = [nth(volumes, 0), nth(volumes, 1)];
    // queued, processing_started and the terminal update, beside each phase's progress.
    expect(whole.updates).toBeLessThanOrEqual(2 * h.config.jobs.progressUpdates + 3);
    expect(whole.bytes).toBeLessThanOrEqual(4 * quarter.bytes);
    expect(whole.largest).toBeLessThanOrEqual(2 * quarter.largest);
  }, 300_000);

  it('refuses a document over the default MAX_CONTENT_BYTES at the start, with BAD_USER_INPUT', async () => {
    const limit = h.config.limits.maxContentBytes;
    expect(limit).toBe(5 * MB);
    const { body } = await h.http(token, StartFileProcessingDocument, {
      input: { name: 'huge.txt', content: `${makePlainText(limit).content}${'!'.repeat(100)}` },
    });
    expect(errorCodes(body.errors)).toEqual(['BAD_USER_INPUT']);
    expect(body.errors?.[0]?.message).toMatch(/bytes; at most 5242880 are accepted/);
  });

  it('ends the stream of a document that outlasts JOB_TIMEOUT_MS with FAILED and says why', async () => {
    // 4 MB takes seconds (0.7 s per MB measured here); 1 MB against 500 ms once finished in time on
    // a quiet CI machine. The smallest timeout against 4 MB leaves a margin of about thirty.
    const { h: strict, token: own } = await herald({ JOB_TIMEOUT_MS: '100', JOB_ATTEMPTS: '1' });
    const updates = await run(strict, own, makePlainText(4 * MB).content);
    expect(updates.at(-1)).toMatchObject({ event: 'processing_failed', status: 'FAILED', message: 'timed out after 100 ms' });
  }, 300_000);
});

import type { Redis } from 'ioredis';
import { expect } from 'vitest';
import { FileProgressDocument, StartFileProcessingDocument } from '../../src/client/generated.js';
import type { Herald } from './herald.js';
import { collect } from './streams.js';

/** Text whose sentences answer "What does a cache keep?". */
export const CACHE_TEXT = 'Sentences about caching. A cache keeps hot data close.';

/**
 * A file of `token`'s user, processed to its end and then stripped of its sentences, so that a
 * query about it fails (answering reads them) until `restore()` puts them back: how a test makes
 * a job fail for a reason of Herald's own.
 */
export async function fileWithoutSentences(h: Herald, redis: Redis, token: string, content = CACHE_TEXT) {
  const { body } = await h.http(token, StartFileProcessingDocument, { input: { name: 'cache.md', content } });
  expect(body.errors).toBeUndefined();
  const { fileId, cursor } = body.data!.startFileProcessing;
  await collect(h.ws(token), FileProgressDocument, { fileId, after: cursor }, { field: 'fileProgress' });
  const key = `${h.config.keyPrefix}file_sentences:{${fileId}}`;
  const saved = await redis.get(key);
  await redis.del(key);
  return {
    fileId,
    async restore(): Promise<void> {
      if (saved !== null) await redis.set(key, saved);
    },
  };
}

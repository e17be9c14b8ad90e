import type { Redis } from 'ioredis';
import { execChecked } from '../redis.js';
import type { SentenceClass } from './text/classify.js';

/** A document as the API accepted it: text, or a PDF checked to open and have text (src/jobs/text/pdf.ts). */
export type AcceptedDocument = { format: 'text'; text: string } | { format: 'pdf'; bytes: Uint8Array };

/** One sentence of a processed file, as queries rank it. */
export interface StoredSentence {
  text: string;
  class: SentenceClass;
  chunk: number;
}

/**
 * The documents side of the store: a file's text waiting for its job, the sentences a processed
 * file yielded, and which processed files each user has (what a query without fileIds searches).
 */
export function createDocumentStore(redis: Redis, keyPrefix: string, ttlSeconds: number) {
  const contentKey = (fileId: string) => `${keyPrefix}file_content:{${fileId}}`;
  const sentencesKey = (fileId: string) => `${keyPrefix}file_sentences:{${fileId}}`;
  const userFilesKey = (userId: string) => `${keyPrefix}user_files:{${userId}}`;
  return {
    /** A document waiting for its job: UTF-8 text, or a PDF's bytes as they came. */
    async saveContent(fileId: string, content: string | Uint8Array): Promise<void> {
      await redis.set(contentKey(fileId), Buffer.from(content), 'EX', ttlSeconds);
    },

    async loadContent(fileId: string): Promise<Buffer | null> {
      return redis.getBuffer(contentKey(fileId));
    },

    /** Keeps a processed file's sentences and lists it among its owner's searchable files. */
    async saveSentences(fileId: string, ownerId: string, sentences: StoredSentence[]): Promise<void> {
      await redis.set(sentencesKey(fileId), JSON.stringify(sentences), 'EX', ttlSeconds);
      await execChecked(redis.multi().sadd(userFilesKey(ownerId), fileId).expire(userFilesKey(ownerId), ttlSeconds));
      await redis.del(contentKey(fileId));
    },

    /** Null for a file that has not been processed (or has expired). */
    async loadSentences(fileId: string): Promise<StoredSentence[] | null> {
      const json = await redis.get(sentencesKey(fileId));
      return json === null ? null : (JSON.parse(json) as StoredSentence[]);
    },

    async processedFiles(userId: string): Promise<string[]> {
      return (await redis.smembers(userFilesKey(userId))).sort();
    },
  };
}

export type DocumentStore = ReturnType<typeof createDocumentStore>;

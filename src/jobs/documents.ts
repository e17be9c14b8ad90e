import type { Redis } from 'ioredis';
import { execChecked } from '../redis.js';
import type { SentenceClass } from './text/classify.js';

/** The kinds of document a file job reads. */
export type DocumentFormat = 'text' | 'pdf';

/** A document as the API accepted it: text, or a PDF checked to open and have text (src/jobs/text/pdf.ts). */
export type AcceptedDocument = { format: 'text'; text: string } | { format: 'pdf'; bytes: Uint8Array };

/** One sentence of a processed file, as queries rank it. */
export interface StoredSentence {
  text: string;
  class: SentenceClass;
  chunk: number;
}

/** What a query asks: kept beside its record, so that it can be asked again once BullMQ no longer holds its job. */
export interface QueryQuestion {
  question: string;
  /** Null means every processed file of the owner. */
  fileIds: string[] | null;
}

/**
 * The documents side of the store: a file's text waiting for its job, a query's question, the
 * sentences a processed file yielded, and which processed files each user has (what a query
 * without fileIds searches).
 */
export function createDocumentStore(redis: Redis, keyPrefix: string, ttlSeconds: number) {
  const contentKey = (fileId: string) => `${keyPrefix}file_content:{${fileId}}`;
  const formatKey = (fileId: string) => `${keyPrefix}file_format:{${fileId}}`;
  const sentencesKey = (fileId: string) => `${keyPrefix}file_sentences:{${fileId}}`;
  const userFilesKey = (userId: string) => `${keyPrefix}user_files:{${userId}}`;
  const questionKey = (queryId: string) => `${keyPrefix}query_question:{${queryId}}`;
  return {
    /**
     * A document waiting for its job (and for a retry of it): its bytes as they came, and beside
     * them its format when it is not text, so that whichever job reads it knows how.
     */
    async saveContent(fileId: string, document: AcceptedDocument): Promise<void> {
      const transaction = redis.multi();
      if (document.format === 'pdf') {
        transaction.set(contentKey(fileId), Buffer.from(document.bytes), 'EX', ttlSeconds);
        transaction.set(formatKey(fileId), 'pdf', 'EX', ttlSeconds);
      } else {
        transaction.set(contentKey(fileId), document.text, 'EX', ttlSeconds).del(formatKey(fileId));
      }
      await execChecked(transaction);
    },

    async loadContent(fileId: string): Promise<{ format: DocumentFormat; content: Uint8Array } | null> {
      const [content, format] = (await execChecked(redis.multi().getBuffer(contentKey(fileId)).get(formatKey(fileId)))) as [
        Buffer | null,
        string | null,
      ];
      return content === null ? null : { format: format === 'pdf' ? 'pdf' : 'text', content };
    },

    /** Kept as long as the query's record, whatever becomes of its job (a retry asks it again). */
    async saveQuestion(queryId: string, question: QueryQuestion): Promise<void> {
      await redis.set(questionKey(queryId), JSON.stringify(question), 'EX', ttlSeconds);
    },

    /** Null for a query started before questions were kept, or expired. */
    async loadQuestion(queryId: string): Promise<QueryQuestion | null> {
      const json = await redis.get(questionKey(queryId));
      return json === null ? null : (JSON.parse(json) as QueryQuestion);
    },

    /** Keeps a processed file's sentences and lists it among its owner's searchable files. */
    async saveSentences(fileId: string, ownerId: string, sentences: StoredSentence[]): Promise<void> {
      await redis.set(sentencesKey(fileId), JSON.stringify(sentences), 'EX', ttlSeconds);
      await execChecked(redis.multi().sadd(userFilesKey(ownerId), fileId).expire(userFilesKey(ownerId), ttlSeconds));
      await redis.del(contentKey(fileId), formatKey(fileId));
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

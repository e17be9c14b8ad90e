import { UnrecoverableError } from 'bullmq';
import type { DocumentStore, StoredSentence } from './documents.js';
import type { FileJobData } from './queues.js';
import type { JobContext } from './run-attempt.js';
import { SENTENCE_CLASSES, classifySentence, type SentenceClass } from './text/classify.js';
import { countWords, splitChunks, splitSentences } from './text/segment.js';

/** What a processed file yields, returned as the job's result and in processing_completed. */
export interface FileSummary {
  chunks: number;
  sentences: number;
  words: number;
  classes: Record<SentenceClass, number>;
}

export interface FileProcessingSettings {
  chunkChars: number;
  classifyBatch: number;
}

/** Share of the progress bar given to extraction; classification takes the rest. */
const EXTRACTION_SHARE = 50;

/**
 * Processes one document: splits it into chunks and sentences (extraction_progress per chunk),
 * classifies the sentences in batches (sentence_classification), stores them for queries, and
 * ends with a summary (processing_completed).
 */
export async function processFile(
  data: FileJobData,
  documents: DocumentStore,
  settings: FileProcessingSettings,
  { publish, signal }: JobContext,
): Promise<FileSummary> {
  const content = await documents.loadContent(data.fileId);
  if (content === null) throw new UnrecoverableError('the file content is no longer available');
  await publish({
    event: 'processing_started',
    status: 'PROCESSING',
    progress: 0,
    message: `Processing ${data.name}`,
    data: { name: data.name, bytes: Buffer.byteLength(content) },
  });

  const chunks = splitChunks(content, settings.chunkChars);
  const extracted: Array<{ text: string; chunk: number }> = [];
  for (const [index, chunk] of chunks.entries()) {
    signal.throwIfAborted();
    const sentences = splitSentences(chunk);
    for (const text of sentences) extracted.push({ text, chunk: index });
    await publish({
      event: 'extraction_progress',
      status: 'PROCESSING',
      progress: round(((index + 1) / chunks.length) * EXTRACTION_SHARE),
      message: `Extracted chunk ${index + 1} of ${chunks.length}`,
      data: { current: index + 1, total: chunks.length, sentences: sentences.length },
    });
  }
  if (extracted.length === 0) throw new UnrecoverableError('the document contains no text');

  const classified: StoredSentence[] = [];
  const classes = Object.fromEntries(SENTENCE_CLASSES.map((c) => [c, 0])) as Record<SentenceClass, number>;
  for (let start = 0; start < extracted.length; start += settings.classifyBatch) {
    signal.throwIfAborted();
    const batch = extracted.slice(start, start + settings.classifyBatch).map((sentence, offset) => {
      const stored: StoredSentence = { ...sentence, class: classifySentence(sentence.text) };
      classes[stored.class] += 1;
      classified.push(stored);
      return { index: start + offset, text: stored.text, class: stored.class };
    });
    const done = start + batch.length;
    await publish({
      event: 'sentence_classification',
      status: 'PROCESSING',
      progress: round(EXTRACTION_SHARE + (done / extracted.length) * (100 - EXTRACTION_SHARE)),
      message: `Classified ${done} of ${extracted.length} sentences`,
      data: { current: done, total: extracted.length, sentences: batch },
    });
  }

  await documents.saveSentences(data.fileId, data.ownerId, classified);
  const summary: FileSummary = {
    chunks: chunks.length,
    sentences: classified.length,
    words: countWords(content),
    classes,
  };
  await publish({
    event: 'processing_completed',
    status: 'COMPLETED',
    progress: 100,
    message: `Processed ${summary.sentences} sentences`,
    data: summary,
  });
  return summary;
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}

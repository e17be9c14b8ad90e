import { setImmediate as nextTurn } from 'node:timers/promises';
import { UnrecoverableError } from 'bullmq';
import type { FileSummary } from '../summaries.js';
import type { DocumentFormat, DocumentStore, StoredSentence } from './documents.js';
import type { FileJobData } from './queues.js';
import type { JobContext } from './run-attempt.js';
import { SENTENCE_CLASSES, classifySentence, type SentenceClass } from './text/classify.js';
import { pdfPages, UnreadablePdfError } from './text/pdf.js';
import { countWords, splitChunks, splitSentences } from './text/segment.js';

export interface FileProcessingSettings {
  chunkChars: number;
  classifyBatch: number;
  /** Most updates of each phase, extraction and classification. */
  progressUpdates: number;
}

/** Share of the progress bar given to extraction; classification takes the rest. */
const EXTRACTION_SHARE = 50;

/** Whether finishing item `done` of `total` moves a phase of `steps` updates on to its next step (always for the last). */
function reachesStep(done: number, total: number, steps: number): boolean {
  const step = (count: number) => Math.floor((count * steps) / total);
  return done === total || step(done) > step(done - 1);
}

/** A piece of a document as extraction reports it: a chunk of a text document, a page of a PDF. */
interface ExtractionUnit {
  index: number;
  total: number;
  text: string;
}

/** A document's text, in the units its extraction goes by. */
async function* extractionUnits(format: DocumentFormat, content: Buffer, chunkChars: number): AsyncGenerator<ExtractionUnit> {
  if (format !== 'pdf') {
    const chunks = splitChunks(content.toString('utf8'), chunkChars);
    for (const [index, text] of chunks.entries()) yield { index, total: chunks.length, text };
    return;
  }
  try {
    for await (const { page, pages, text } of pdfPages(content)) yield { index: page - 1, total: pages, text };
  } catch (error) {
    // The API checked the PDF before queueing it; one that fails here will fail again.
    if (error instanceof UnreadablePdfError) throw new UnrecoverableError(error.message);
    throw error;
  }
}

/**
 * Processes one document: splits it into chunks (a PDF: pages) and sentences (extraction_progress), classifies the
 * sentences in batches (sentence_classification, carrying that batch's sentences), stores them for
 * queries, and ends with a summary (processing_completed). Each phase publishes at most
 * `progressUpdates` updates, each of bounded size, so a watcher, a replay and the history see a
 * bounded stream: for a larger document an update covers several chunks (`sentences` counts what
 * they yielded) and only every few batches is published; a small one gets an update per chunk and
 * per batch.
 * The work yields to the event loop after every chunk and batch, so a cancel, the job timeout and
 * BullMQ's lock renewal are served however long the document.
 */
export async function processFile(
  data: FileJobData,
  documents: DocumentStore,
  settings: FileProcessingSettings,
  { publish, signal }: JobContext,
): Promise<FileSummary> {
  const stored = await documents.loadContent(data.fileId);
  if (stored === null) throw new UnrecoverableError('the file content is no longer available');
  const { format } = stored;
  // From a job thread the bytes arrive as a plain Uint8Array (structured clone): a Buffer view of them, no copy.
  const content = Buffer.from(stored.content.buffer, stored.content.byteOffset, stored.content.byteLength);
  await publish({
    event: 'processing_started',
    status: 'PROCESSING',
    progress: 0,
    message: `Processing ${data.name}`,
    data: { name: data.name, bytes: content.length, format },
  });

  const unit = format === 'pdf' ? 'page' : 'chunk';
  const extracted: Array<{ text: string; chunk: number }> = [];
  let units = 0;
  let reported = 0;
  let words = 0;
  for await (const { index, total, text: unitText } of extractionUnits(format, content, settings.chunkChars)) {
    await nextTurn(undefined, { signal });
    units = total;
    words += countWords(unitText);
    for (const text of splitSentences(unitText)) extracted.push({ text, chunk: index });
    if (!reachesStep(index + 1, total, settings.progressUpdates)) continue;
    await publish({
      event: 'extraction_progress',
      status: 'PROCESSING',
      progress: round(((index + 1) / total) * EXTRACTION_SHARE),
      message: `Extracted ${unit} ${index + 1} of ${total}`,
      data: { current: index + 1, total, unit, sentences: extracted.length - reported },
    });
    reported = extracted.length;
  }
  if (extracted.length === 0) throw new UnrecoverableError('the document contains no text');

  const classified: StoredSentence[] = [];
  const classes = Object.fromEntries(SENTENCE_CLASSES.map((c) => [c, 0])) as Record<SentenceClass, number>;
  const batches = Math.ceil(extracted.length / settings.classifyBatch);
  for (let batch = 0; batch < batches; batch += 1) {
    await nextTurn(undefined, { signal });
    const start = batch * settings.classifyBatch;
    const sentences = extracted.slice(start, start + settings.classifyBatch).map((sentence, offset) => {
      const stored: StoredSentence = { ...sentence, class: classifySentence(sentence.text) };
      classes[stored.class] += 1;
      classified.push(stored);
      return { index: start + offset, text: stored.text, class: stored.class };
    });
    if (!reachesStep(batch + 1, batches, settings.progressUpdates)) continue;
    const done = classified.length;
    await publish({
      event: 'sentence_classification',
      status: 'PROCESSING',
      progress: round(EXTRACTION_SHARE + (done / extracted.length) * (100 - EXTRACTION_SHARE)),
      message: `Classified ${done} of ${extracted.length} sentences`,
      data: { current: done, total: extracted.length, sentences },
    });
  }

  await documents.saveSentences(data.fileId, data.ownerId, classified);
  const summary: FileSummary = {
    chunks: units,
    sentences: classified.length,
    words,
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

import type { AnswerSummary } from '../summaries.js';
import { distinctPassages, selectPassages } from './answer/extractive.js';
import type { AnswerGenerator, Passage } from './answer/generator.js';
import type { DocumentStore } from './documents.js';
import type { QueryJobData } from './queues.js';
import type { JobContext } from './run-attempt.js';
import { createBm25Index } from './text/bm25.js';
import { createTokenCoalescer } from './token-coalescer.js';

export interface AnswerSettings {
  tokenFlushTokens: number;
  tokenFlushMs: number;
  /** Candidate passages handed to the generator. */
  candidates: number;
  /** Passages an answer may quote. */
  maxSentences: number;
}

/**
 * Answers a question from processed files: ranks their distinct sentences with BM25 (retrieving), then
 * streams the generator's answer as coalesced token updates (generating, token) and ends with
 * done. A file that is not processed yet fails the attempt, so the retry can find it ready.
 * The answer so far is the query's body: each token update appends its token, the attempt's first
 * update that does starts a new body (a retried attempt starts over), and no update carries the
 * whole text, so history grows with the answer rather than with its square.
 */
export async function answerQuery(
  data: QueryJobData,
  documents: DocumentStore,
  generator: AnswerGenerator,
  settings: AnswerSettings,
  { publish, signal }: JobContext,
): Promise<AnswerSummary> {
  const started = Date.now();
  await publish({ event: 'retrieving', status: 'PROCESSING', progress: 0, message: 'Ranking passages' });
  const fileIds = data.fileIds ?? (await documents.processedFiles(data.ownerId));
  const passages: Passage[] = [];
  for (const fileId of fileIds) {
    const sentences = await documents.loadSentences(fileId);
    if (sentences === null) throw new Error(`file ${fileId} is not processed yet`);
    sentences.forEach((sentence, sentenceIndex) => passages.push({ text: sentence.text, fileId, sentenceIndex, score: 0 }));
  }
  signal.throwIfAborted();
  const ranked = createBm25Index(distinctPassages(passages))
    .search(data.question, settings.candidates)
    .map(({ doc, score }) => ({ ...doc, score }));
  await publish({
    event: 'generating',
    status: 'PROCESSING',
    progress: 10,
    message: `Answering from ${ranked.length} passages of ${fileIds.length} files`,
    data: { files: fileIds.length, passages: passages.length, candidates: ranked.length },
  });

  let text = '';
  let tokens = 0;
  const coalescer = createTokenCoalescer({
    maxTokens: settings.tokenFlushTokens,
    maxDelayMs: settings.tokenFlushMs,
    flush: async (token) => {
      const restart = text === '';
      text += token;
      await publish({ event: 'token', status: 'PROCESSING', token }, { append: token, restart });
    },
  });
  try {
    for await (const token of generator.generate({ question: data.question, passages: ranked }, signal)) {
      tokens += 1;
      await coalescer.push(token);
    }
    await coalescer.end();
  } finally {
    coalescer.cancel();
  }
  const summary: AnswerSummary = {
    text,
    tokens,
    latencyMs: Date.now() - started,
    generator: generator.name,
    sources: selectPassages(ranked, settings.maxSentences).map(({ fileId, sentenceIndex, score, text }) => ({
      fileId,
      sentenceIndex,
      score,
      text,
    })),
  };
  await publish(
    {
      event: 'done',
      status: 'COMPLETED',
      progress: 100,
      message: 'Answered',
      data: { tokens, latencyMs: summary.latencyMs, generator: summary.generator, sources: summary.sources },
    },
    { append: '', restart: text === '' },
  );
  return summary;
}

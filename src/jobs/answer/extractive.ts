import type { AnswerGenerator, AnswerInput, Passage } from './generator.js';

/** Said instead of guessing when retrieval found nothing, so an answer never cites what it did not use. */
export const NO_PASSAGE_ANSWER = 'No relevant passage was found in the documents.';

/** A passage chosen for the answer, with the number its ` [n]` marker shows. */
export interface CitedPassage extends Passage {
  /** 1-based index of the passage's file among the distinct files cited, in order of first use. */
  citation: number;
}

/** Collapses whitespace, as a passage's text appears in an answer. */
function collapse(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

/**
 * Keeps the first of passages that say the same thing (equal text once whitespace is collapsed and
 * case ignored), so a sentence repeated in a document, or the same document processed twice, is
 * ranked and quoted once.
 */
export function distinctPassages<T extends { text: string }>(passages: readonly T[]): T[] {
  const seen = new Set<string>();
  return passages.filter((passage) => {
    const key = collapse(passage.text).toLowerCase();
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/**
 * The single place that decides which passages an extractive answer uses, so the
 * generator and whoever reports the answer's sources always agree.
 * Passages are ranked by score (highest first, input order on ties); empty ones and
 * repeats of a passage already chosen ({@link distinctPassages}) are skipped; at most
 * `maxSentences` are kept. Returned text has its whitespace collapsed, exactly as it
 * appears in the answer.
 */
export function selectPassages(passages: readonly Passage[], maxSentences: number): CitedPassage[] {
  assertMaxSentences(maxSentences);
  const ranked = passages
    .map((passage, order) => ({ passage, order, rank: Number.isNaN(passage.score) ? -Infinity : passage.score }))
    .sort((a, b) => b.rank - a.rank || a.order - b.order)
    .map(({ passage }) => ({ ...passage, text: collapse(passage.text) }))
    .filter((passage) => passage.text !== '');
  const citations = new Map<string, number>();
  return distinctPassages(ranked)
    .slice(0, maxSentences)
    .map((passage) => {
      const citation = citations.get(passage.fileId) ?? citations.size + 1;
      citations.set(passage.fileId, citation);
      return { ...passage, citation };
    });
}

/**
 * The default generator: quotes the best passages verbatim, each followed by its
 * citation, so every answer is traceable to the documents and needs no model.
 * Tokens are words carrying their leading whitespace, so joining them gives the exact
 * answer text. It never waits between tokens; pacing is left to the consumer.
 */
export function createExtractiveGenerator(options: { maxSentences?: number } = {}): AnswerGenerator {
  const maxSentences = options.maxSentences ?? 3;
  assertMaxSentences(maxSentences);
  return {
    name: 'extractive',
    async *generate(input: AnswerInput, signal: AbortSignal): AsyncGenerator<string, void, undefined> {
      const selected = selectPassages(input.passages, maxSentences);
      const answer =
        selected.length === 0 ? NO_PASSAGE_ANSWER : selected.map((passage) => `${passage.text} [${passage.citation}]`).join(' ');
      for (const token of answer.match(/\s*\S+/g) ?? []) {
        if (signal.aborted) throw signal.reason;
        yield token;
      }
    },
  };
}

function assertMaxSentences(maxSentences: number): void {
  if (!Number.isInteger(maxSentences) || maxSentences < 1) {
    throw new RangeError(`maxSentences must be a positive integer, got ${maxSentences}`);
  }
}

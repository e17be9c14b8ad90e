import { describe, it, expect } from 'vitest';
import type { Passage } from '../../src/jobs/answer/generator.js';
import {
  NO_PASSAGE_ANSWER,
  createExtractiveGenerator,
  distinctPassages,
  selectPassages,
} from '../../src/jobs/answer/extractive.js';

const passages: Passage[] = [
  { text: 'Workers retry a failed chunk three times.', fileId: 'file-b', sentenceIndex: 4, score: 2.5 },
  { text: 'Herald streams progress to browsers.', fileId: 'file-a', sentenceIndex: 0, score: 3.1 },
  { text: 'Progress events go\n through   Redis.', fileId: 'file-a', sentenceIndex: 7, score: 1.2 },
  { text: 'The dashboard is optional.', fileId: 'file-c', sentenceIndex: 2, score: 0.4 },
];

async function collect(iterable: AsyncIterable<string>): Promise<string[]> {
  const tokens: string[] = [];
  for await (const token of iterable) tokens.push(token);
  return tokens;
}

describe('selectPassages', () => {
  it('keeps the best passages in rank order and numbers files by first use', () => {
    expect(selectPassages(passages, 3)).toEqual([
      { text: 'Herald streams progress to browsers.', fileId: 'file-a', sentenceIndex: 0, score: 3.1, citation: 1 },
      { text: 'Workers retry a failed chunk three times.', fileId: 'file-b', sentenceIndex: 4, score: 2.5, citation: 2 },
      { text: 'Progress events go through Redis.', fileId: 'file-a', sentenceIndex: 7, score: 1.2, citation: 1 },
    ]);
  });

  it('skips duplicates and empty passages', () => {
    const noisy: Passage[] = [
      { text: '   ', fileId: 'x', sentenceIndex: 0, score: 9 },
      { text: 'Kept.', fileId: 'y', sentenceIndex: 1, score: 5 },
      { text: 'Kept.', fileId: 'y', sentenceIndex: 1, score: 5 },
      { text: 'Also kept.', fileId: 'z', sentenceIndex: 3, score: 1 },
    ];
    expect(selectPassages(noisy, 5).map((p) => [p.fileId, p.citation])).toEqual([
      ['y', 1],
      ['z', 2],
    ]);
  });

  it('never repeats a passage, whatever file, position, spacing or case it comes from', () => {
    const repeated: Passage[] = [
      { text: 'Retries back off.', fileId: 'a', sentenceIndex: 1, score: 9 },
      { text: 'Retries back off.', fileId: 'a', sentenceIndex: 5, score: 8 },
      { text: 'retries  back\noff.', fileId: 'b', sentenceIndex: 0, score: 7 },
      { text: 'Jobs fail for good after the last attempt.', fileId: 'b', sentenceIndex: 2, score: 1 },
    ];
    expect(selectPassages(repeated, 3).map((p) => [p.text, p.fileId, p.citation])).toEqual([
      ['Retries back off.', 'a', 1],
      ['Jobs fail for good after the last attempt.', 'b', 2],
    ]);
    expect(distinctPassages(repeated).map((p) => p.sentenceIndex)).toEqual([1, 2]);
  });

  it('rejects a non-positive maximum', () => {
    expect(() => selectPassages(passages, 0)).toThrow(RangeError);
    expect(() => createExtractiveGenerator({ maxSentences: -1 })).toThrow(RangeError);
  });
});

describe('createExtractiveGenerator', () => {
  it('streams the cited answer as whitespace-led word tokens', async () => {
    const generator = createExtractiveGenerator();
    const tokens = await collect(
      generator.generate({ question: 'How does Herald work?', passages }, new AbortController().signal),
    );
    expect(tokens.join('')).toBe(
      'Herald streams progress to browsers. [1] Workers retry a failed chunk three times. [2] ' +
        'Progress events go through Redis. [1]',
    );
    expect(tokens.slice(0, 6)).toEqual(['Herald', ' streams', ' progress', ' to', ' browsers.', ' [1]']);
    for (const token of tokens) expect(token).toMatch(/^\s?\S+$/);
  });

  it('honours maxSentences', async () => {
    const generator = createExtractiveGenerator({ maxSentences: 1 });
    const tokens = await collect(generator.generate({ question: 'q', passages }, new AbortController().signal));
    expect(tokens.join('')).toBe('Herald streams progress to browsers. [1]');
  });

  it('says so when there are no passages', async () => {
    const generator = createExtractiveGenerator();
    const tokens = await collect(generator.generate({ question: 'q', passages: [] }, new AbortController().signal));
    expect(tokens.join('')).toBe(NO_PASSAGE_ANSWER);
    expect(NO_PASSAGE_ANSWER).toMatch(/no relevant passage/i);
  });

  it('stops with the abort reason once aborted', async () => {
    const controller = new AbortController();
    const reason = new Error('client went away');
    const iterator = createExtractiveGenerator().generate({ question: 'q', passages }, controller.signal)[Symbol.asyncIterator]();
    expect((await iterator.next()).value).toBe('Herald');
    expect((await iterator.next()).value).toBe(' streams');
    controller.abort(reason);
    await expect(iterator.next()).rejects.toBe(reason);
  });

  it('does not start when already aborted', async () => {
    const controller = new AbortController();
    controller.abort();
    const stream = createExtractiveGenerator().generate({ question: 'q', passages }, controller.signal);
    await expect(collect(stream)).rejects.toMatchObject({ name: 'AbortError' });
  });
});

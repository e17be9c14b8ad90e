import { afterEach, describe, it, expect, vi } from 'vitest';
import {
  SEGMENT_WINDOW_CHARS,
  countWords,
  segmentsOf,
  splitChunks,
  splitSentences,
  stem,
  tokenize,
} from '../../src/jobs/text/segment.js';
import { SENTENCE_CLASSES, classifySentence } from '../../src/jobs/text/classify.js';
import { createBm25Index } from '../../src/jobs/text/bm25.js';
import { nth } from '../helpers/elements.js';

const words = (text: string): string[] => text.split(/\s+/).filter(Boolean);

const DOC = `# Herald

Herald is a real-time progress server. It streams job updates to browsers over WebSocket and server-sent events.

Clients subscribe once and receive every update until the job completes or fails.

## Workers

Workers pull jobs from BullMQ and process each document chunk by chunk. After every chunk the worker publishes a progress event through Redis.

A failed chunk is retried three times before the whole job is marked as failed.

## Answers

Questions are answered from the uploaded documents by ranking sentences with BM25 and quoting the best ones.
`;

describe('splitChunks', () => {
  it('keeps every chunk within the size limit and never empty', () => {
    for (const max of [40, 80, 120, 200, 1000]) {
      const chunks = splitChunks(DOC, max);
      expect(chunks.length).toBeGreaterThan(0);
      for (const chunk of chunks) {
        expect(chunk.length).toBeLessThanOrEqual(max);
        expect(chunk.trim()).toBe(chunk);
        expect(chunk).not.toBe('');
      }
    }
  });

  it('loses no words and keeps their order', () => {
    for (const max of [40, 80, 120, 200, 1000]) {
      expect(words(splitChunks(DOC, max).join('\n'))).toEqual(words(DOC));
    }
  });

  it('starts a new chunk at every heading', () => {
    const chunks = splitChunks(DOC, 1000);
    expect(chunks).toHaveLength(3);
    expect(chunks[0]).toMatch(/^# Herald/);
    expect(chunks[1]).toMatch(/^## Workers/);
    expect(chunks[2]).toMatch(/^## Answers/);
    for (const chunk of chunks) expect(chunk.split('\n').slice(1).join('\n')).not.toMatch(/^#/m);
  });

  it('packs whole paragraphs together while they fit', () => {
    const text = 'Alpha one.\n\nBeta two.\n\nGamma three.\n\nDelta four.';
    expect(splitChunks(text, 25)).toEqual(['Alpha one.\n\nBeta two.', 'Gamma three.\n\nDelta four.']);
  });

  it('splits an oversized paragraph at sentence boundaries', () => {
    const paragraph = 'The first sentence is here. The second sentence follows it. The third one ends it.';
    expect(splitChunks(paragraph, 40)).toEqual([
      'The first sentence is here.',
      'The second sentence follows it.',
      'The third one ends it.',
    ]);
  });

  it('hard-splits text with no usable boundary without losing characters', () => {
    const blob = 'x'.repeat(25);
    const chunks = splitChunks(blob, 10);
    expect(chunks).toEqual(['xxxxxxxxxx', 'xxxxxxxxxx', 'xxxxx']);
    const long = 'word '.repeat(30).trim();
    const pieces = splitChunks(long, 12);
    for (const piece of pieces) expect(piece.length).toBeLessThanOrEqual(12);
    expect(words(pieces.join(' '))).toEqual(words(long));
  });

  it('does not split fenced code at blank lines or # comments', () => {
    const text = 'Intro.\n\n```sh\necho one\n\n# comment\necho two\n```';
    expect(splitChunks(text, 1000)).toEqual([text]);
  });

  it('returns nothing for whitespace-only input and rejects a bad size', () => {
    expect(splitChunks('', 100)).toEqual([]);
    expect(splitChunks(' \n\n\t \n', 100)).toEqual([]);
    expect(() => splitChunks('text', 0)).toThrow(RangeError);
    expect(() => splitChunks('text', 2.5)).toThrow(RangeError);
  });
});

describe('splitSentences', () => {
  it('splits a realistic paragraph into trimmed sentences', () => {
    const paragraph =
      'Herald reports progress in real time. Each worker publishes an event after every chunk!\n' +
      'Do clients need to poll? No, they subscribe once and wait.';
    expect(splitSentences(paragraph)).toEqual([
      'Herald reports progress in real time.',
      'Each worker publishes an event after every chunk!',
      'Do clients need to poll?',
      'No, they subscribe once and wait.',
    ]);
  });

  it('rejoins hard-wrapped lines and collapses whitespace', () => {
    expect(splitSentences('A sentence that is\nwrapped   over\ttwo lines. Then another.')).toEqual([
      'A sentence that is wrapped over two lines.',
      'Then another.',
    ]);
  });

  it('strips markdown noise so sentences read as plain text', () => {
    const chunk = [
      '## Getting started',
      '',
      '- Run **npm start** to boot the `server`.',
      '* Open the [dashboard](https://example.com) in a browser.',
      '1. Upload a document.',
      '> Progress appears *immediately*.',
      '',
      '---',
    ].join('\n');
    expect(splitSentences(chunk)).toEqual([
      'Getting started',
      'Run npm start to boot the server.',
      'Open the dashboard in a browser.',
      'Upload a document.',
      'Progress appears immediately.',
    ]);
  });

  it('drops empty and punctuation-only fragments', () => {
    expect(splitSentences('')).toEqual([]);
    expect(splitSentences('  \n\n ... \n')).toEqual([]);
  });
});

describe('tokenize', () => {
  it('lowercases, keeps word-like segments and removes stop words', () => {
    expect(tokenize('The Worker, and the QUEUE!')).toEqual(['worker', 'queu']);
    expect(tokenize('What is it?')).toEqual([]);
  });

  it('lets inflected forms of a word meet', () => {
    const forms = ['process', 'processes', 'processing', 'processed'];
    expect(new Set(forms.map((form) => tokenize(form)[0]))).toEqual(new Set(['process']));
    expect(tokenize('files file')).toEqual([stem('file'), stem('file')]);
    expect(tokenize('queries query')).toEqual(['query', 'query']);
    expect(tokenize('stopped stopping stop')).toEqual(['stop', 'stop', 'stop']);
    expect(tokenize('boxes box')).toEqual(['box', 'box']);
  });

  it('leaves short stems, non-plural endings and numbers alone', () => {
    expect(stem('bus')).toBe('bus');
    expect(stem('status')).toBe('status');
    expect(stem('thing')).toBe('thing');
    expect(stem('red')).toBe('red');
    expect(stem('add')).toBe('add');
    expect(tokenize('worker\u2019s 3.5 2024')).toEqual(['worker', '3.5', '2024']);
  });

  it('counts words including stop words', () => {
    expect(countWords('Hello, world. It is 3.5 degrees!')).toBe(6);
    expect(countWords('   ')).toBe(0);
  });
});

/** Plain text with no blank line: one paragraph, as a pasted or exported document often is. */
function plainText(sentences: number): string {
  const parts: string[] = [];
  for (let i = 0; i < sentences; i += 1) {
    parts.push(`Sentence ${i} says that topic ${i % 97} grew by ${i % 13} percent, e.g. in Dr. Smith's "report".`);
    if (i % 7 === 6) parts.push('\n');
  }
  return parts.join(' ');
}

describe('segmentsOf', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('finds the same segments as one Intl.Segmenter call over the whole text', () => {
    const text = `${plainText(40)} 東京は日本の首都です。それは大きい。 ${'x'.repeat(2 * SEGMENT_WINDOW_CHARS + 1)} The end… really?! Yes.`;
    for (const granularity of ['word', 'sentence'] as const) {
      const segmenter = new Intl.Segmenter(undefined, { granularity });
      const whole = [...segmenter.segment(text)].map(({ segment, index, isWordLike }) => ({ segment, index, isWordLike }));
      expect([...segmentsOf(segmenter, text)]).toEqual(whole);
    }
  });

  it('processes a document four times larger with at most four times the segmenter work', () => {
    const inputs: number[] = [];
    // eslint-disable-next-line @typescript-eslint/unbound-method -- called below with the segmenter as `this`
    const segment = Intl.Segmenter.prototype.segment;
    vi.spyOn(Intl.Segmenter.prototype, 'segment').mockImplementation(function (this: Intl.Segmenter, input: string) {
      inputs.push(input.length);
      return segment.call(this, input);
    });
    /** What a file job does with the text; V8's segmenter costs each call's input length per segment found. */
    const work = (text: string) => {
      inputs.length = 0;
      for (const chunk of splitChunks(text, 2_000)) splitSentences(chunk);
      countWords(text);
      return { longest: Math.max(...inputs), chars: inputs.reduce((sum, n) => sum + n, 0) };
    };
    const small = work(plainText(250));
    const large = work(plainText(1_000));
    expect(large.longest).toBeLessThanOrEqual(SEGMENT_WINDOW_CHARS);
    expect(small.longest).toBeLessThanOrEqual(SEGMENT_WINDOW_CHARS);
    expect(large.chars).toBeLessThanOrEqual(4.2 * small.chars);
  });
});

describe('classifySentence', () => {
  it('lists every class once', () => {
    expect([...SENTENCE_CLASSES].sort()).toEqual(['claim', 'definition', 'other', 'question']);
  });

  it.each([
    ['What is Herald?', 'question'],
    ['Does the worker retry failed chunks?', 'question'],
    ['How does the worker report progress', 'question'],
    ['Herald is a real-time progress server.', 'definition'],
    ['Workers are processes that pull jobs from the queue.', 'definition'],
    ['A chunk refers to one page of a document.', 'definition'],
    ['SSE means server-sent events.', 'definition'],
    ['The latency budget is defined as the time until the first event.', 'definition'],
    ['Redis, also known as the store, keeps all state.', 'definition'],
    ['The queue handles 10,000 jobs per second.', 'claim'],
    ['Latency dropped by forty percent after the change.', 'claim'],
    ['The project started in 2021.', 'claim'],
    ['The dashboard looks clean.', 'other'],
    ['When the job finishes, it emits an event.', 'other'],
    ['This is a test.', 'other'],
    ['Jobs are retried automatically.', 'other'],
    ['', 'other'],
  ] as const)('%j is a %s', (sentence, expected) => {
    expect(classifySentence(sentence)).toBe(expected);
  });

  it('applies question > definition > claim precedence', () => {
    expect(classifySentence('Is Herald a server with 3 workers?')).toBe('question');
    expect(classifySentence('What is a chunk in 2024?')).toBe('question');
    expect(classifySentence('Herald is a server that handles 10,000 connections.')).toBe('definition');
    expect(classifySentence('Herald handles 10,000 connections.')).toBe('claim');
  });
});

describe('createBm25Index', () => {
  const sentences = [
    { id: 'a', text: 'Herald streams progress updates to browsers.' },
    { id: 'b', text: 'Workers retry a failed chunk three times before failing the job.' },
    { id: 'c', text: 'The job queue is stored in Redis.' },
    { id: 'd', text: 'Each job publishes progress events.' },
    { id: 'e', text: 'Clients subscribe to job progress over WebSocket.' },
  ];
  const index = createBm25Index(sentences);

  it('ranks the obviously relevant sentence first', () => {
    const hits = index.search('How many times is a failed chunk retried?', 5);
    expect(hits[0]?.doc.id).toBe('b');
    expect(hits[0]?.score).toBeGreaterThan(0);
    expect(index.search('Where is the queue stored?', 5)[0]?.doc.id).toBe('c');
  });

  it('returns scores best first', () => {
    const hits = index.search('job progress websocket', 5);
    const scores = hits.map((hit) => hit.score);
    expect(scores).toEqual([...scores].sort((x, y) => y - x));
    expect(hits[0]?.doc.id).toBe('e');
  });

  it('returns nothing for a query sharing no terms', () => {
    expect(index.search('banana smoothie recipe', 5)).toEqual([]);
    expect(index.search('the of and', 5)).toEqual([]);
    expect(index.search('', 5)).toEqual([]);
  });

  it('respects the limit', () => {
    expect(index.search('job', 2)).toHaveLength(2);
    expect(index.search('job', 0)).toEqual([]);
    expect(index.search('job', 100)).toHaveLength(4);
  });

  it('breaks ties by original order', () => {
    const twins = createBm25Index([
      { id: 1, text: 'other words here' },
      { id: 2, text: 'redis cluster' },
      { id: 3, text: 'redis cluster' },
      { id: 4, text: 'redis cluster' },
    ]);
    expect(twins.search('redis', 10).map((hit) => hit.doc.id)).toEqual([2, 3, 4]);
  });

  it('downweights terms that occur in many documents', () => {
    const docs = [{ text: 'job redis' }, { text: 'job alpha' }, { text: 'job beta' }, { text: 'job gamma' }];
    const idx = createBm25Index(docs);
    const common = idx.search('job', 10).find((hit) => hit.doc === docs[0]);
    const rare = idx.search('redis', 10).find((hit) => hit.doc === docs[0]);
    expect(common).toBeDefined();
    expect(rare).toBeDefined();
    expect(rare!.score).toBeGreaterThan(common!.score);
    expect(idx.search('job redis', 10)[0]?.doc).toBe(docs[0]);
  });

  it('normalises by document length', () => {
    const docs = [
      { text: 'redis holds the queue state along with many other unrelated details about deployment' },
      { text: 'redis holds state' },
    ];
    expect(createBm25Index(docs).search('redis', 2)[0]?.doc).toBe(docs[1]);
    const flat = createBm25Index(docs, { b: 0 }).search('redis', 2);
    expect(nth(flat, 0).score).toBeCloseTo(nth(flat, 1).score, 12);
  });

  it('handles an empty corpus and rejects bad options', () => {
    expect(createBm25Index([]).search('anything', 3)).toEqual([]);
    expect(() => createBm25Index([], { b: 2 })).toThrow(RangeError);
    expect(() => createBm25Index([], { k1: -1 })).toThrow(RangeError);
  });
});

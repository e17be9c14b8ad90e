const sentenceSegmenter = new Intl.Segmenter(undefined, { granularity: 'sentence' });
const wordSegmenter = new Intl.Segmenter(undefined, { granularity: 'word' });

/** Longest text handed to `Intl.Segmenter` at once; see {@link segmentsOf}. */
export const SEGMENT_WINDOW_CHARS = 1_024;

/** One segment of {@link segmentsOf}: `index` is its offset in the whole text. */
export interface Segment {
  segment: string;
  index: number;
  isWordLike?: boolean;
}

/**
 * Segments a text of any length in time proportional to its length. V8's `Intl.Segmenter` (Node 20)
 * does work proportional to the whole input for every segment it returns, so one call on a document
 * costs its length squared (a 370 KB text took 37 s). Each window of {@link SEGMENT_WINDOW_CHARS}
 * keeps all but its last segment, which may have been cut short, and the next window starts where
 * that segment did; a window holding a single segment is widened until it holds two or ends the text.
 */
export function* segmentsOf(segmenter: Intl.Segmenter, text: string): Generator<Segment> {
  let start = 0;
  let width = SEGMENT_WINDOW_CHARS;
  for (;;) {
    const end = Math.min(text.length, start + width);
    const segments = [...segmenter.segment(text.slice(start, end))];
    const whole = end === text.length;
    if (!whole && segments.length < 2) {
      width *= 2;
      continue;
    }
    const next = whole ? text.length : start + segments.at(-1)!.index;
    for (const { segment, index, isWordLike } of segments) {
      if (start + index >= next) break;
      yield { segment, index: start + index, isWordLike };
    }
    if (whole) return;
    start = next;
    width = SEGMENT_WINDOW_CHARS;
  }
}

const LINE_BREAK = /\r\n?|\n/;
const HEADING_LINE = /^ {0,3}#{1,6}(?:\s|$)/;
const FENCE_LINE = /^ {0,3}(?:`{3,}|~{3,})/;
const RULE_LINE = /^(?:[-*_=]\s*){3,}$/;
const HEADING_MARKER = /^#{1,6}(?:\s+|$)/;
const HEADING_CLOSER = /\s+#+\s*$/;
const LIST_MARKER = /^(?:[-*+]|\d{1,9}[.)])\s+/;
const QUOTE_MARKER = /^(?:>\s?)+/;
const HAS_WORD_CHAR = /[\p{L}\p{N}]/u;

interface Block {
  text: string;
  heading: boolean;
}

/**
 * Splits a document into chunks ("pages") so a job can report progress per chunk.
 * A markdown heading always starts a new chunk, and paragraphs are packed whole, so
 * chunks follow the document's own structure; only a paragraph longer than
 * `maxChunkChars` is cut, at sentence boundaries when possible, else at whitespace,
 * else hard. Every chunk is trimmed, non-empty and at most `maxChunkChars` long.
 */
export function splitChunks(text: string, maxChunkChars: number): string[] {
  if (!Number.isInteger(maxChunkChars) || maxChunkChars < 1) {
    throw new RangeError(`maxChunkChars must be a positive integer, got ${maxChunkChars}`);
  }
  const chunks: string[] = [];
  let current = '';
  const flush = (): void => {
    if (current) chunks.push(current);
    current = '';
  };
  for (const block of splitBlocks(text)) {
    if (block.heading) flush();
    if (block.text.length > maxChunkChars) {
      flush();
      const pieces = splitOversized(block.text, maxChunkChars);
      chunks.push(...pieces.slice(0, -1));
      current = pieces[pieces.length - 1] ?? '';
      continue;
    }
    const joined = current ? `${current}\n\n${block.text}` : block.text;
    if (joined.length <= maxChunkChars) {
      current = joined;
    } else {
      flush();
      current = block.text;
    }
  }
  flush();
  return chunks;
}

/** Blank lines and headings delimit blocks; fenced code is kept whole so its blank lines and `#` comments do not split it. */
function splitBlocks(text: string): Block[] {
  const blocks: Block[] = [];
  let lines: string[] = [];
  let heading = false;
  let inFence = false;
  const flush = (): void => {
    const body = lines.join('\n').trim();
    if (body) blocks.push({ text: body, heading });
    lines = [];
    heading = false;
  };
  for (const line of text.split(LINE_BREAK)) {
    if (FENCE_LINE.test(line)) {
      inFence = !inFence;
      lines.push(line);
    } else if (inFence) {
      lines.push(line);
    } else if (line.trim() === '') {
      flush();
    } else if (HEADING_LINE.test(line)) {
      flush();
      heading = true;
      lines.push(line);
    } else {
      lines.push(line);
    }
  }
  flush();
  return blocks;
}

/** Packs the raw sentence segments (which carry their trailing whitespace) so the original text between sentences is preserved. */
function splitOversized(text: string, max: number): string[] {
  const pieces: string[] = [];
  let current = '';
  for (const { segment } of segmentsOf(sentenceSegmenter, text)) {
    const candidate = current + segment;
    if (candidate.trim().length <= max) {
      current = candidate;
      continue;
    }
    if (current.trim()) pieces.push(current.trim());
    current = '';
    const sentence = segment.trim();
    if (!sentence) continue;
    if (sentence.length <= max) {
      current = segment;
      continue;
    }
    const parts = hardSplit(sentence, max);
    pieces.push(...parts.slice(0, -1));
    current = (parts[parts.length - 1] ?? '') + segment.slice(segment.trimEnd().length);
  }
  if (current.trim()) pieces.push(current.trim());
  return pieces;
}

/** Last resort for text with no usable sentence boundary: cut at the last whitespace that fits, else at `max` without splitting a surrogate pair. */
function hardSplit(text: string, max: number): string[] {
  const parts: string[] = [];
  let rest = text;
  while (rest.length > max) {
    let cut = 0;
    for (let i = max; i > 0; i--) {
      if (/\s/.test(rest.charAt(i))) {
        cut = i;
        break;
      }
    }
    if (cut > 0) {
      parts.push(rest.slice(0, cut).trimEnd());
      rest = rest.slice(cut).trimStart();
      continue;
    }
    cut = max;
    if (cut > 1 && isHighSurrogate(rest.charCodeAt(cut - 1))) cut -= 1;
    parts.push(rest.slice(0, cut));
    rest = rest.slice(cut);
  }
  if (rest) parts.push(rest);
  return parts;
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

/**
 * Splits a chunk into plain-text sentences suitable for ranking and quoting in answers.
 * Markdown structure is resolved line by line first, because the sentence segmenter
 * breaks at every newline: headings and list items become their own units, wrapped
 * paragraph lines are rejoined, and fences, rules and quote markers are dropped.
 * Inline emphasis, code spans and links are reduced to their text, whitespace is
 * collapsed, and fragments with no letter or digit are discarded.
 */
export function splitSentences(chunk: string): string[] {
  const sentences: string[] = [];
  for (const unit of toUnits(chunk)) {
    for (const { segment } of segmentsOf(sentenceSegmenter, unit)) {
      const sentence = cleanInline(segment);
      if (HAS_WORD_CHAR.test(sentence)) sentences.push(sentence);
    }
  }
  return sentences;
}

function toUnits(chunk: string): string[] {
  const units: string[] = [];
  let open = false;
  let inFence = false;
  for (const raw of chunk.split(LINE_BREAK)) {
    const line = raw.trim().replace(QUOTE_MARKER, '').trim();
    if (FENCE_LINE.test(line)) {
      inFence = !inFence;
      open = false;
    } else if (inFence) {
      if (line) units.push(line);
    } else if (!line || RULE_LINE.test(line)) {
      open = false;
    } else if (HEADING_MARKER.test(line)) {
      units.push(line.replace(HEADING_MARKER, '').replace(HEADING_CLOSER, ''));
      open = false;
    } else if (LIST_MARKER.test(line)) {
      units.push(line.replace(LIST_MARKER, ''));
      open = true;
    } else if (open) {
      units[units.length - 1] += ` ${line}`;
    } else {
      units.push(line);
      open = true;
    }
  }
  return units;
}

function cleanInline(text: string): string {
  return text
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/\*\*(.+?)\*\*/g, '$1')
    .replace(/__(.+?)__/g, '$1')
    .replace(/(?<![\w*])\*(?!\s)([^*]+?)(?<!\s)\*(?![\w*])/g, '$1')
    .replace(/`+([^`]+?)`+/g, '$1')
    .replace(/\s+/g, ' ')
    .trim()
    .replace(LIST_MARKER, '')
    .replace(HEADING_MARKER, '');
}

const STOP_WORDS: ReadonlySet<string> = new Set([
  'a',
  'about',
  'after',
  'all',
  'also',
  'am',
  'an',
  'and',
  'any',
  'are',
  'as',
  'at',
  'be',
  'been',
  'before',
  'being',
  'between',
  'both',
  'but',
  'by',
  'can',
  'could',
  'did',
  'do',
  'does',
  'doing',
  'during',
  'each',
  'for',
  'from',
  'had',
  'has',
  'have',
  'having',
  'he',
  'her',
  'here',
  'hers',
  'him',
  'his',
  'how',
  'i',
  'if',
  'in',
  'into',
  'is',
  'it',
  'its',
  'itself',
  'just',
  'may',
  'me',
  'might',
  'more',
  'most',
  'must',
  'my',
  'no',
  'nor',
  'not',
  'of',
  'off',
  'on',
  'only',
  'or',
  'other',
  'our',
  'ours',
  'out',
  'over',
  'own',
  'same',
  'shall',
  'she',
  'should',
  'so',
  'some',
  'such',
  'than',
  'that',
  'the',
  'their',
  'theirs',
  'them',
  'then',
  'there',
  'these',
  'they',
  'this',
  'those',
  'through',
  'to',
  'too',
  'under',
  'until',
  'up',
  'very',
  'was',
  'we',
  'were',
  'what',
  'when',
  'where',
  'which',
  'while',
  'who',
  'whom',
  'whose',
  'why',
  'will',
  'with',
  'would',
  'you',
  'your',
  'yours',
]);

/**
 * Turns text into the terms used for retrieval, so a question and a passage match on
 * content words regardless of case, function words or simple inflection.
 * Tokens are the word-like segments of `Intl.Segmenter`, lowercased, minus a small
 * English stop-word list, then reduced by {@link stem}.
 */
export function tokenize(text: string): string[] {
  const tokens: string[] = [];
  for (const { segment, isWordLike } of segmentsOf(wordSegmenter, text)) {
    if (!isWordLike) continue;
    const word = segment.toLowerCase().replace(/['\u2019]s$/, '');
    if (!word || STOP_WORDS.has(word)) continue;
    tokens.push(stem(word));
  }
  return tokens;
}

/** Counts words as the segmenter sees them (stop words included), so progress and size figures read like a word processor's. */
export function countWords(text: string): number {
  let count = 0;
  for (const { isWordLike } of segmentsOf(wordSegmenter, text)) {
    if (isWordLike) count++;
  }
  return count;
}

const MIN_STEM = 3;

/**
 * A deliberately light stemmer: enough for "process", "processes", "processing" and
 * "processed" to meet, without a dictionary. It strips a plural ("-ies" to "-y",
 * "-es" after s/x/z/ch/sh, else "-s"), then "-ing" or "-ed" (undoubling a final
 * consonant, as in "stopped"), then a final silent "e" so "create"/"created" agree.
 * A suffix is only removed when at least three letters remain, and only purely
 * alphabetic words are touched.
 */
export function stem(word: string): string {
  if (!/^\p{L}+$/u.test(word)) return word;
  let w = word;
  if (w.endsWith('ies') && w.length - 3 >= MIN_STEM) {
    w = `${w.slice(0, -3)}y`;
  } else if (/(?:s|x|z|ch|sh)es$/.test(w) && w.length - 2 >= MIN_STEM) {
    w = w.slice(0, -2);
  } else if (/[^sui]s$/.test(w) && w.length - 1 >= MIN_STEM) {
    w = w.slice(0, -1);
  }
  const verbal = /(?:ing|ed)$/.exec(w);
  if (verbal && w.length - verbal[0].length >= MIN_STEM) {
    w = w.slice(0, -verbal[0].length);
    if (/([^aeiouylsz])\1$/.test(w)) w = w.slice(0, -1);
  }
  if (w.endsWith('e') && w.length - 1 >= MIN_STEM) w = w.slice(0, -1);
  return w;
}

/** Kinds of sentence a document job tallies, so clients can show what a document is made of. */
export type SentenceClass = 'question' | 'claim' | 'definition' | 'other';

/** Every class in precedence order, for building zeroed tallies and validating input. */
export const SENTENCE_CLASSES: readonly SentenceClass[] = Object.freeze(['question', 'definition', 'claim', 'other'] as const);

// prettier-ignore
const INTERROGATIVES: ReadonlySet<string> = new Set([
  'who', 'whom', 'whose', 'what', 'which', 'when', 'where', 'why', 'how',
  'is', 'are', 'was', 'were', 'do', 'does', 'did',
  'can', 'could', 'should', 'would', 'will', 'shall', 'may',
]);

// prettier-ignore
const NON_SUBJECT_STARTS: ReadonlySet<string> = new Set([
  'it', 'this', 'that', 'these', 'those', 'there', 'here', 'they', 'he', 'she', 'we', 'you', 'i',
  'who', 'what', 'which', 'when', 'where', 'why', 'how', 'if',
]);

const SUBJECT_WORD = String.raw`(?!(?:is|are|was|were)\b)[^\s,;:]+`;
const SUBJECT = String.raw`(?:${SUBJECT_WORD}\s+){0,5}${SUBJECT_WORD}`;
const COPULA_DEFINITION = [
  new RegExp(String.raw`^${SUBJECT}\s+(?:is|are)\s+(?:a|an|the)\s+\S`, 'i'),
  new RegExp(String.raw`^${SUBJECT}\s+are\s+(?!(?:sometimes|perhaps|besides)\b)\p{L}+[^suiy\P{L}]s\b`, 'iu'),
  new RegExp(String.raw`^${SUBJECT}\s+(?:means|refers\s+to|stands\s+for)\s+\S`, 'i'),
];
const ANYWHERE_DEFINITION = /\b(?:(?:is|are)\s+defined\s+as|(?:also\s+)?known\s+as)\s+\S/i;

const QUANTITY_WORDS = new RegExp(
  String.raw`\b(?:percent|per\s+cent|percentage|half|twice|double|triple|dozens?|hundreds?|thousands?|millions?|billions?|trillions?|` +
    String.raw`two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)\b`,
  'i',
);

/**
 * Deterministic, dependency-free rules, so the same document always yields the same
 * tallies. Whitespace is collapsed first; the first matching rule wins:
 *
 * 1. `question`: ends with `?` (closing quotes/brackets ignored), or has at least three
 *    words, starts with an interrogative or auxiliary (who, what, when, where, why, how,
 *    which, is, are, do, does, can, should, ...) and has no terminal `.` or `!`.
 * 2. `definition`: a short subject (one to six words, not starting with a pronoun or
 *    wh-word) followed by "is/are a|an|the ...", "are <plural noun>", "means",
 *    "refers to" or "stands for"; or anywhere "is/are defined as" or "known as".
 * 3. `claim`: states a quantity: any digit, or a word such as percent, half, twice,
 *    thousand, million, or a number word from two to ninety.
 * 4. `other`: everything else, including empty input.
 */
export function classifySentence(sentence: string): SentenceClass {
  const text = sentence.replace(/\s+/g, ' ').trim();
  if (!text) return 'other';
  if (isQuestion(text)) return 'question';
  if (isDefinition(text)) return 'definition';
  if (/\d/.test(text) || QUANTITY_WORDS.test(text)) return 'claim';
  return 'other';
}

function isQuestion(text: string): boolean {
  const end = text.replace(/["'\u201d\u2019)\]]+$/, '');
  if (end.endsWith('?')) return true;
  if (/[.!]$/.test(end)) return false;
  const words = text.split(' ');
  return words.length >= 3 && INTERROGATIVES.has(firstWord(text));
}

function isDefinition(text: string): boolean {
  if (ANYWHERE_DEFINITION.test(text)) return true;
  if (NON_SUBJECT_STARTS.has(firstWord(text))) return false;
  return COPULA_DEFINITION.some((pattern) => pattern.test(text));
}

function firstWord(text: string): string {
  return (/^[\p{L}']+/u.exec(text)?.[0] ?? '').toLowerCase();
}

import { tokenize } from './segment.js';

/** Tuning knobs of Okapi BM25; the defaults are the usual ones and rarely need changing. */
export interface Bm25Options {
  /** Term-frequency saturation; 0 makes repeated terms count once. */
  k1?: number;
  /** Length normalisation, from 0 (none) to 1 (full). */
  b?: number;
}

/** A scored match; `score` is only comparable within one index. */
export interface Bm25Hit<T> {
  doc: T;
  score: number;
}

/** A search index built once and queried many times. */
export interface Bm25Index<T> {
  /** Best first, ties in original order, only positive scores, at most `limit` hits. */
  search(query: string, limit: number): Array<Bm25Hit<T>>;
}

interface Posting<T> {
  index: number;
  doc: T;
  tf: number;
  /** The document's length in terms. */
  length: number;
}

/**
 * Ranks passages against a question without any model or external service, so
 * answers can be grounded in the documents cheaply and deterministically.
 * Okapi BM25 over {@link tokenize} terms, with idf = ln(1 + (N - n + 0.5) / (n + 0.5)),
 * which stays positive so a term present in every document still counts a little.
 * Term frequencies, lengths and postings are computed once here; a search only
 * visits documents sharing a term with the query. Repeated query terms count once.
 */
export function createBm25Index<T extends { text: string }>(docs: readonly T[], options: Bm25Options = {}): Bm25Index<T> {
  const k1 = options.k1 ?? 1.2;
  const b = options.b ?? 0.75;
  if (!Number.isFinite(k1) || k1 < 0) throw new RangeError(`k1 must be a finite number >= 0, got ${k1}`);
  if (!Number.isFinite(b) || b < 0 || b > 1) throw new RangeError(`b must be between 0 and 1, got ${b}`);

  const snapshot = docs.slice();
  const postings = new Map<string, Array<Posting<T>>>();
  let totalLength = 0;
  snapshot.forEach((doc, index) => {
    const terms = tokenize(doc.text);
    totalLength += terms.length;
    const counts = new Map<string, number>();
    for (const term of terms) counts.set(term, (counts.get(term) ?? 0) + 1);
    for (const [term, tf] of counts) {
      const posting = { index, doc, tf, length: terms.length };
      const list = postings.get(term);
      if (list) list.push(posting);
      else postings.set(term, [posting]);
    }
  });
  const n = snapshot.length;
  const averageLength = n > 0 ? totalLength / n : 0;
  const idf = new Map<string, number>();
  for (const [term, list] of postings) {
    idf.set(term, Math.log(1 + (n - list.length + 0.5) / (list.length + 0.5)));
  }

  return {
    search(query: string, limit: number): Array<Bm25Hit<T>> {
      if (!(limit >= 1)) return [];
      const hits = new Map<number, Bm25Hit<T>>();
      for (const term of new Set(tokenize(query))) {
        const list = postings.get(term);
        const weight = idf.get(term);
        if (!list || weight === undefined) continue;
        for (const { index, doc, tf, length } of list) {
          const norm = k1 * (1 - b + (b * length) / averageLength);
          const score = (weight * tf * (k1 + 1)) / (tf + norm);
          const hit = hits.get(index);
          if (hit) hit.score += score;
          else hits.set(index, { doc, score });
        }
      }
      return [...hits]
        .filter(([, hit]) => hit.score > 0)
        .sort(([indexA, hitA], [indexB, hitB]) => hitB.score - hitA.score || indexA - indexB)
        .slice(0, Math.floor(limit))
        .map(([, hit]) => hit);
    },
  };
}

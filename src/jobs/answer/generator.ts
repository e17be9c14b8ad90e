/** A ranked sentence from an uploaded document, the unit an answer is built from and cites. */
export interface Passage {
  text: string;
  fileId: string;
  sentenceIndex: number;
  score: number;
}

/** Everything a generator may use, so answers stay grounded in the retrieved passages. */
export interface AnswerInput {
  question: string;
  passages: readonly Passage[];
}

/** Produces the answer as a stream of tokens; another model can be plugged in by implementing this. */
export interface AnswerGenerator {
  readonly name: string;
  generate(input: AnswerInput, signal: AbortSignal): AsyncIterable<string>;
}

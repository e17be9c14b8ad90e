/**
 * The `data` of the last update of a file (`processing_completed`) and of a query (`done`). The
 * schema types `data` as JSON, so these shapes are the part of the contract that the jobs write
 * and clients read; like errors.ts, this file is shared by the server and herald/client.
 */
export interface FileSummary {
  chunks: number;
  sentences: number;
  words: number;
  /** Sentences per class: question, claim, definition, other. */
  classes: Record<string, number>;
}

export interface AnswerSummary {
  text: string;
  tokens: number;
  latencyMs: number;
  generator: string;
  sources: Array<{ fileId: string; sentenceIndex: number; score: number; text: string }>;
}

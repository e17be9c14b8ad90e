/**
 * `herald/client`: a typed client for browsers and Node. The client itself, and the typed
 * documents of Herald's own operations to use with it.
 */
export * from './client.js';
export * from './generated.js';
export type { AnswerSummary, FileSummary } from '../summaries.js';

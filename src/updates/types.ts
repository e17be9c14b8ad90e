import type { BodyRange } from './body.js';

/** Every status an update may carry; the last three end the stream. */
export const UPDATE_STATUSES = ['QUEUED', 'PROCESSING', 'COMPLETED', 'FAILED', 'CANCELLED'] as const;
export type UpdateStatus = (typeof UPDATE_STATUSES)[number];

/** After one of these a resource's stream is closed: nothing more is appended. */
export type TerminalStatus = Extract<UpdateStatus, 'COMPLETED' | 'FAILED' | 'CANCELLED'>;
const TERMINAL_STATUSES: ReadonlySet<UpdateStatus> = new Set<TerminalStatus>(['COMPLETED', 'FAILED', 'CANCELLED']);

/**
 * Where a resource's updates live. The project is part of the address because a resource in a
 * project shares the project's Redis hash slot, so one script can append to both streams.
 */
export interface ResourceRef {
  /** What the resource is (`file`, `query`): opaque to the store, which makes it part of keys and channels. */
  kind: string;
  id: string;
  projectId?: string | null;
}

/** What a producer says about a resource; the store adds seq, epoch and a timestamp if missing. */
export interface UpdateInput {
  event: string;
  status: UpdateStatus;
  progress?: number | null;
  message?: string | null;
  data?: unknown;
  /** Query answers only: the new text of a token event. */
  token?: string | null;
  /**
   * Query answers only: the whole answer so far, from producers that keep no body. Herald's own
   * jobs append tokens to the query's body instead, so history grows with the answer, not its square.
   */
  text?: string | null;
  timestamp?: string;
}

export interface Update extends UpdateInput {
  timestamp: string;
}

/** Anything kept in a stream: numbered within its epoch. */
export interface StreamEntry {
  seq: number;
  epoch: string;
}

/** One stored update of one resource, exactly as it is kept in history and published. */
export interface UpdateEntry extends StreamEntry {
  kind: string;
  id: string;
  update: Update;
  /** Set when the update appended to the resource's body: the body so far (see append.lua). */
  body?: BodyRange;
  /**
   * The W3C trace context of the span that appended it, when tracing is on: delivery spans on every
   * API instance join its trace. Never shown to GraphQL clients.
   */
  traceparent?: string;
}

/** One update in a project's stream: the resource's own entry, numbered again in the project. */
export interface ProjectEntry extends StreamEntry {
  item: UpdateEntry;
}

export function isTerminal(status: UpdateStatus): status is TerminalStatus {
  return TERMINAL_STATUSES.has(status);
}

import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { print, type GraphQLFormattedError } from 'graphql';
import { createClient, type FormattedExecutionResult, type SubscribePayload } from 'graphql-ws/client';
import { CloseCode, ErrorCode } from '../errors.js';
import { createChannel } from './channel.js';
import {
  FileProgressDocument,
  NotificationsDocument,
  PresenceChangedDocument,
  ProjectProgressDocument,
  QueryProgressDocument,
  type FileProgressSubscription,
  type NotificationsSubscription,
  type PresenceChangedSubscription,
  type PresenceTarget,
  type ProjectProgressSubscription,
  type QueryProgressSubscription,
} from './generated.js';

/** The items the built-in subscriptions yield, named for use in application code. */
export type FileUpdate = FileProgressSubscription['fileProgress'];
export type QueryUpdate = QueryProgressSubscription['queryProgress'];
export type ProjectUpdate = ProjectProgressSubscription['projectProgress'];
export type NotificationItem = NotificationsSubscription['notifications'];
export type PresenceEvent = PresenceChangedSubscription['presenceChanged'];

export interface HeraldClientOptions {
  /** The graphql-ws endpoint, e.g. `wss://herald.example.com/graphql`. */
  url: string;
  /**
   * Called before every connection attempt, so a reconnect after the token expired (close 4401)
   * or was revoked (4403) carries a fresh one. A token refused right after it was handed out ends
   * every operation with UNAUTHENTICATED instead of reconnecting forever; a call that throws fails
   * that attempt, which is retried with backoff.
   */
  getToken(): string | Promise<string>;
  /** The WebSocket class: the global one by default (browsers, Node 22); on Node 20 pass `ws`'s. */
  webSocketImpl?: unknown;
  /**
   * Ping interval in ms, for `latencyMs` and to notice a dead connection: a ping unanswered for
   * as long again drops the socket, which reconnects. Default 10,000.
   */
  keepAliveMs?: number;
  /**
   * Reconnect backoff with full jitter: attempt n waits a random time in
   * [0, min(maxDelayMs, baseDelayMs * 2^(n-1))]. Defaults 500 and 30,000 ms.
   */
  backoff?: { baseDelayMs?: number; maxDelayMs?: number };
}

/** The connection as a status line would show it; `closeCode` says why a reconnect is needed. */
export type ConnectionState =
  | { status: 'connecting' }
  | { status: 'connected' }
  | { status: 'reconnecting'; attempt: number; delayMs: number; closeCode: number | null }
  | { status: 'closed'; code: number | null; reason: string };

/**
 * How to resume a subscription: the cursor to pass as `after` to continue right after an item
 * and, to drop repeats defensively, its position: items of one `key` come with rising `seq`, and
 * a gap notice starts counting afresh (after a lost history, seqs may start again from 1).
 */
export interface Resume<TItem> {
  cursorOf(item: TItem): string;
  positionOf?(item: TItem): { key: string; seq: number; gap: boolean };
}

/**
 * The `code` of a HeraldError when the connection closed before a mutation's result: unlike the
 * contract's codes, it says nothing of whether the mutation took effect.
 */
export const CONNECTION_CLOSED = 'CONNECTION_CLOSED';

/** Why an operation failed: `code` is the contract's error code, or {@link CONNECTION_CLOSED}. */
export class HeraldError extends Error {
  override name = 'HeraldError';
  constructor(
    message: string,
    readonly code: string,
    readonly errors: readonly GraphQLFormattedError[] = [],
    /** The WebSocket close code when the connection ended the operation. */
    readonly closeCode: number | null = null,
  ) {
    super(message);
  }
}

/** The item type of a subscription: the value of its single root field. */
export type Item<TData> = TData[keyof TData];

/** Variables may be left out when the operation has no required ones. */
type VariablesArg<TVariables> = Record<string, never> extends TVariables ? [variables?: TVariables] : [variables: TVariables];

export interface HeraldClient {
  /**
   * Subscribes to a resumable stream (one taking an `after` cursor). Across reconnects, server
   * restarts and token renewals it resubscribes after the last item delivered, so the caller sees
   * every item once and in order. Ends when the server completes the stream (after a terminal
   * update); throws a HeraldError for an error the server reports.
   */
  subscribe<TData, TVariables extends { after?: string | null }>(
    document: TypedDocumentNode<TData, TVariables>,
    variables: TVariables,
    resume: Resume<Item<TData>>,
  ): AsyncIterableIterator<Item<TData>>;
  fileProgress(fileId: string, after?: string): AsyncIterableIterator<FileUpdate>;
  queryProgress(queryId: string, after?: string): AsyncIterableIterator<QueryUpdate>;
  projectProgress(projectId: string, after?: string): AsyncIterableIterator<ProjectUpdate>;
  notifications(after?: string): AsyncIterableIterator<NotificationItem>;
  /**
   * Who is watching a project or a resource: first the full list (PRESENT), then each join and
   * leave with the list after it. After a reconnect it starts again with a fresh PRESENT, since
   * presence is a state rather than a history to resume.
   */
  presenceChanged(target: PresenceTarget): AsyncIterableIterator<PresenceEvent>;
  /** Runs a query; one interrupted by a reconnect is sent again. */
  query<TData, TVariables>(
    document: TypedDocumentNode<TData, TVariables>,
    ...variables: VariablesArg<TVariables>
  ): Promise<TData>;
  /**
   * Runs a mutation at most once: if the socket closes before the result, it fails with
   * CONNECTION_CLOSED rather than being sent again, since it may already have taken effect.
   */
  mutate<TData, TVariables>(
    document: TypedDocumentNode<TData, TVariables>,
    ...variables: VariablesArg<TVariables>
  ): Promise<TData>;
  readonly state: ConnectionState;
  /** Round trip of the last ping, in ms; null before the first pong. */
  readonly latencyMs: number | null;
  /** Calls `listener` on every state change; returns a function that stops it. */
  onState(listener: (state: ConnectionState) => void): () => void;
  /** Calls `listener` with each measured round trip; returns a function that stops it. */
  onLatency(listener: (latencyMs: number) => void): () => void;
  /** Ends every iteration, fails pending queries and mutations, closes the socket and stops every listener. */
  dispose(): Promise<void>;
}

/** Resumes updates of one file or query (fileProgress, queryProgress, or your own selection of them). */
export const progressResume: Resume<{ cursor: string; seq: number; gap?: unknown }> = {
  cursorOf: (update) => update.cursor,
  positionOf: (update) => ({ key: '', seq: update.seq, gap: Boolean(update.gap) }),
};

const projectResume: Resume<ProjectUpdate> = {
  cursorOf: (item) => item.cursor,
  positionOf: ({ update, gap }) => ({
    key: update.__typename === 'FileUpdate' ? `file:${update.fileId}` : `query:${update.queryId}`,
    seq: update.seq,
    gap: gap !== null,
  }),
};

const notificationResume: Resume<NotificationItem> = { cursorOf: (item) => item.cursor };

/** Closes graphql-ws does not retry by itself but after which the server may well accept us. */
const RETRY_LATER = new Set<number>([CloseCode.TooManyConnections, CloseCode.InternalServerError]);
/** Auth closes in a row, with no connection acknowledged between them, before giving up. */
const MAX_AUTH_REFUSALS = 2;
/** How long a socket nothing uses stays open, for the next operation. */
const IDLE_CLOSE_MS = 5_000;

interface CloseLike {
  code: number;
  reason: string;
}

interface OperationSink {
  next(result: FormattedExecutionResult<Record<string, unknown>, unknown>): void;
  error(error: HeraldError): void;
  complete(): void;
}

/**
 * A typed Herald client over one graphql-ws socket that reconnects forever while it is in use,
 * with a fresh token each time, and resumes its subscriptions from their cursors.
 */
export function createHeraldClient(options: HeraldClientOptions): HeraldClient {
  const keepAliveMs = options.keepAliveMs ?? 10_000;
  const { baseDelayMs = 500, maxDelayMs = 30_000 } = options.backoff ?? {};
  const stateListeners = new Set<(state: ConnectionState) => void>();
  const latencyListeners = new Set<(latencyMs: number) => void>();
  /** Ends each operation in progress: stops it and completes its sink. */
  const operations = new Set<() => void>();
  const shutdown = new AbortController();
  let state: ConnectionState = { status: 'closed', code: null, reason: '' };
  let latencyMs: number | null = null;
  let attempt = 0;
  let authRefusals = 0;
  let lastClose: CloseLike | null = null;
  // graphql-ws waits (retryWait) before its next connect from when shouldRetry says yes until an ack.
  let transportRetrying = false;
  let reconnect: { cause: CloseLike; ready: Promise<void> } | null = null;
  let pingSentAt = 0;
  let pongDeadline: ReturnType<typeof setTimeout> | undefined;

  const setState = (next: ConnectionState) => {
    state = next;
    for (const listener of stateListeners) listener(next);
  };

  async function waitToReconnect(closeCode: number | null): Promise<void> {
    attempt += 1;
    // A fresh token is worth trying at once; anything else backs off.
    const delayMs =
      closeCode === CloseCode.Unauthorized
        ? 0
        : Math.round(Math.random() * Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1)));
    setState({ status: 'reconnecting', attempt, delayMs, closeCode });
    await sleep(delayMs, shutdown.signal);
  }

  const ws = createClient({
    url: options.url,
    webSocketImpl: options.webSocketImpl,
    lazyCloseTimeout: IDLE_CLOSE_MS,
    keepAlive: keepAliveMs,
    retryAttempts: Infinity,
    shouldRetry(cause) {
      if (isCloseLike(cause) && isAuthClose(cause.code) && authRefusals >= MAX_AUTH_REFUSALS) return false;
      transportRetrying = true;
      return true;
    },
    retryWait: () => waitToReconnect(lastClose?.code ?? null),
    connectionParams: async () => ({ authorization: `Bearer ${await options.getToken()}` }),
    on: {
      connecting: () => setState({ status: 'connecting' }),
      connected: () => {
        attempt = 0;
        authRefusals = 0;
        transportRetrying = false;
        setState({ status: 'connected' });
      },
      closed: (event) => {
        clearTimeout(pongDeadline);
        lastClose = isCloseLike(event) ? event : null;
        if (lastClose && isAuthClose(lastClose.code)) authRefusals += 1;
        setState({ status: 'closed', code: lastClose?.code ?? null, reason: lastClose?.reason ?? '' });
      },
      ping: (received) => {
        if (received) return;
        pingSentAt = performance.now();
        pongDeadline = setTimeout(() => ws.terminate(), keepAliveMs);
      },
      pong: (received) => {
        if (!received) return;
        clearTimeout(pongDeadline);
        const measured = performance.now() - pingSentAt;
        latencyMs = measured;
        for (const listener of latencyListeners) listener(measured);
      },
    },
  });

  /**
   * Decides, once per close that graphql-ws gave up on, whether to run the operations it ended
   * again: after an expired token (with a fresh one) or a server that may accept us later.
   */
  function reconnectAfter(cause: unknown): Promise<void> {
    if (!isCloseLike(cause)) return Promise.reject(toHeraldError(cause));
    if (reconnect?.cause !== cause) reconnect = { cause, ready: retryOrGiveUp(cause) };
    return reconnect.ready;
  }

  async function retryOrGiveUp(close: CloseLike): Promise<void> {
    const freshToken = close.code === CloseCode.Unauthorized && authRefusals < MAX_AUTH_REFUSALS;
    if (!freshToken && !RETRY_LATER.has(close.code)) throw toHeraldError(close);
    if (!transportRetrying) await waitToReconnect(close.code);
  }

  /** Runs one operation on the shared socket, again after a close graphql-ws gave up on when that may help. */
  function run(payload: SubscribePayload, sink: OperationSink): () => void {
    let stopped = false;
    let unsubscribe = () => {};
    const stop = () => {
      stopped = true;
      operations.delete(end);
      unsubscribe();
    };
    const end = () => {
      stop();
      sink.complete();
    };
    const start = () => {
      unsubscribe = ws.subscribe(payload, {
        next: (result) => {
          if (!stopped) sink.next(result);
        },
        complete: () => {
          if (!stopped) end();
        },
        error: (cause) => {
          unsubscribe(); // releases graphql-ws's hold on the socket
          if (stopped) return;
          reconnectAfter(cause).then(
            () => {
              if (!stopped) start();
            },
            (error: HeraldError) => {
              if (stopped) return;
              stop();
              sink.error(error);
            },
          );
        },
      });
    };
    operations.add(end);
    start();
    return stop;
  }

  function subscribe<TData, TVariables extends { after?: string | null }>(
    document: TypedDocumentNode<TData, TVariables>,
    variables: TVariables,
    resume: Resume<Item<TData>>,
  ): AsyncIterableIterator<Item<TData>> {
    let after = variables.after ?? null;
    const marks = new Map<string, number>();
    /** Records where `item` sits and says whether it is new. */
    const accept = (item: Item<TData>): boolean => {
      if (resume.cursorOf(item) === after) return false;
      const position = resume.positionOf?.(item);
      if (!position) return true;
      if (position.gap) marks.clear();
      else if ((marks.get(position.key) ?? -Infinity) >= position.seq) return false;
      marks.set(position.key, position.seq);
      return true;
    };
    return stream<TData>(
      {
        query: print(document),
        // Read at every send, so the subscription graphql-ws sends again after a reconnect resumes
        // right after the last item delivered.
        get variables() {
          return { ...variables, after };
        },
      },
      (item) => {
        if (!accept(item)) return false;
        after = resume.cursorOf(item);
        return true;
      },
    );
  }

  /** The root field's items of a subscription, those `accept` lets through, until it ends or fails. */
  function stream<TData>(payload: SubscribePayload, accept: (item: Item<TData>) => boolean): AsyncIterableIterator<Item<TData>> {
    const channel = createChannel<Item<TData>>(() => stop());
    const stop = run(payload, {
      next(result) {
        if (result.errors?.length) {
          stop();
          channel.end(toHeraldError(result.errors));
          return;
        }
        const item = result.data ? (Object.values(result.data)[0] as Item<TData> | undefined) : undefined;
        if (item === undefined || item === null || !accept(item)) return;
        channel.push(item);
      },
      error: (error) => channel.end(error),
      complete: () => channel.end(),
    });
    return channel;
  }

  function execute<TData>(document: TypedDocumentNode<TData, never>, variables: unknown, atMostOnce: boolean): Promise<TData> {
    return new Promise<TData>((resolve, reject) => {
      let result: FormattedExecutionResult<Record<string, unknown>, unknown> | undefined;
      const closedEarly = () =>
        new HeraldError('the connection closed before the result', CONNECTION_CLOSED, [], lastClose?.code ?? null);
      const settle = (error: HeraldError | null) => {
        stopWatchingCloses();
        stop();
        if (error) reject(error);
        else if (result?.errors?.length) reject(toHeraldError(result.errors));
        else if (result?.data) resolve(result.data as TData);
        else reject(closedEarly());
      };
      const stop = run(
        { query: print(document), variables: variables as Record<string, unknown> | undefined },
        { next: (value) => (result = value), error: settle, complete: () => settle(null) },
      );
      const stopWatchingCloses = atMostOnce ? ws.on('closed', () => settle(closedEarly())) : () => {};
    });
  }

  return {
    subscribe,
    fileProgress: (fileId, after) => subscribe(FileProgressDocument, { fileId, after }, progressResume),
    queryProgress: (queryId, after) => subscribe(QueryProgressDocument, { queryId, after }, progressResume),
    projectProgress: (projectId, after) => subscribe(ProjectProgressDocument, { projectId, after }, projectResume),
    notifications: (after) => subscribe(NotificationsDocument, { after }, notificationResume),
    presenceChanged: (target) =>
      stream<PresenceChangedSubscription>({ query: print(PresenceChangedDocument), variables: { target } }, () => true),
    query: (document, ...[variables]) => execute(document, variables, false),
    mutate: (document, ...[variables]) => execute(document, variables, true),
    get state() {
      return state;
    },
    get latencyMs() {
      return latencyMs;
    },
    onState(listener) {
      stateListeners.add(listener);
      return () => stateListeners.delete(listener);
    },
    onLatency(listener) {
      latencyListeners.add(listener);
      return () => latencyListeners.delete(listener);
    },
    async dispose() {
      shutdown.abort();
      for (const end of [...operations]) end();
      try {
        await ws.dispose();
      } catch {
        // It interrupted a connection attempt, which is what we want here.
      }
      clearTimeout(pongDeadline);
      if (state.status !== 'closed') setState({ status: 'closed', code: 1000, reason: 'Disposed' });
      stateListeners.clear();
      latencyListeners.clear();
    },
  };
}

function isCloseLike(value: unknown): value is CloseLike {
  return typeof value === 'object' && value !== null && 'code' in value && typeof value.code === 'number' && 'reason' in value;
}

function isAuthClose(code: number): boolean {
  return code === CloseCode.Unauthorized || code === CloseCode.Revoked;
}

const closeErrorCodes: Record<number, string> = {
  [CloseCode.Unauthorized]: ErrorCode.Unauthenticated,
  [CloseCode.Revoked]: ErrorCode.Forbidden,
  [CloseCode.TooManyConnections]: ErrorCode.RateLimited,
};

function toHeraldError(cause: unknown): HeraldError {
  if (cause instanceof HeraldError) return cause;
  if (Array.isArray(cause) && cause.length > 0) {
    const errors = cause as GraphQLFormattedError[];
    const code = errors[0]?.extensions?.code;
    return new HeraldError(errors.map((e) => e.message).join('; '), typeof code === 'string' ? code : ErrorCode.Internal, errors);
  }
  if (isCloseLike(cause)) {
    return new HeraldError(
      `connection closed: ${cause.code} ${cause.reason}`.trim(),
      closeErrorCodes[cause.code] ?? CONNECTION_CLOSED,
      [],
      cause.code,
    );
  }
  return new HeraldError(cause instanceof Error ? cause.message : String(cause), ErrorCode.Internal);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    if (signal.aborted) done();
    else signal.addEventListener('abort', done);
  });
}

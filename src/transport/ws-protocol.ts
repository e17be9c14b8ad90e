import type { ExecutionResult, GraphQLFormattedError } from 'graphql';
import {
  GRAPHQL_TRANSPORT_WS_PROTOCOL,
  MessageType,
  parseMessage,
  stringifyMessage,
  type Message,
  type SubscribePayload,
} from 'graphql-ws';
import type { Duplex } from 'node:stream';
import { WebSocket } from 'ws';
import { CloseCode } from '../errors.js';
import type { EventStream, Sink } from '../updates/event-stream.js';

/** What starting an operation gives: errors before it ran, one result, or a stream of results. */
export type OperationOutcome =
  { errors: GraphQLFormattedError[] } | { result: ExecutionResult } | { stream: EventStream<ExecutionResult> };

/** What the hooks see of a running operation: its id, and a mark of their own. */
export interface OperationHandle {
  readonly id: string;
  /** False until the hooks set it: for them to tell, when it ends, whether they counted it (a per-connection cap). */
  counted: boolean;
}

/** Herald's side of a session: who may connect, how an operation runs, how a result is written. */
export interface SessionHooks {
  /** connection_init: true to acknowledge; false once the hook has closed the socket. */
  init(payload: Record<string, unknown> | undefined): Promise<boolean>;
  /** A subscribe message: validate and start the operation. */
  start(operation: OperationHandle, payload: SubscribePayload): Promise<OperationOutcome>;
  /** The operation is over, whoever ended it; called once per operation started. */
  ended(operation: OperationHandle): void;
  /** The socket is about to be closed because the client stopped reading (slowConsumerCloseCode). */
  slowConsumer(): void;
  /** The socket closed (after its operations were stopped). */
  closed(code: number): void;
  /** The JSON of a `next` payload. Called once per subscriber, so it should cache by result. */
  serialize(result: ExecutionResult): string;
  /** What to tell the client when an operation's stream throws. */
  failed(id: string, error: unknown): GraphQLFormattedError[];
}

export interface SessionOptions {
  /** Close a socket that sends no connection_init within this time (4408). */
  initTimeoutMs: number;
  /** Unsent data past which the socket's subscriptions stop sending until it drains. */
  maxBufferedBytes: number;
  /** How long the socket may stay over maxBufferedBytes before it is closed as a slow consumer. */
  slowConsumerMs: number;
  /** The code to close such a socket with. */
  slowConsumerCloseCode: number;
}

/**
 * One running operation; compared by identity, so an id reused after `complete` is a new one. A
 * stream's results are piped to it, so an idle subscription holds no pending promise or closures.
 */
class Operation implements Sink<ExecutionResult>, OperationHandle {
  stream: EventStream<ExecutionResult> | null = null;
  counted = false;
  /** Its `next` frames up to the payload. */
  readonly frameStart: string;
  private over = false;

  constructor(
    private readonly session: ProtocolSession,
    readonly id: string,
  ) {
    this.frameStart = `{"id":${JSON.stringify(id)},"type":"next","payload":`;
  }

  next(result: ExecutionResult): boolean {
    return !this.session.isCurrent(this) || this.session.next(this.frameStart, result);
  }

  end(): void {
    this.settle(null);
  }

  fail(error: unknown): void {
    this.settle({ error });
  }

  /** The operation is over, completed (`failure` null) or failed; only the first call counts. */
  settle(failure: { error: unknown } | null): void {
    if (this.over) return;
    this.over = true;
    this.session.settled(this, failure);
  }
}

/**
 * A message waiting for the tick's write, in three parts: a `next` payload is copied into the write
 * as it is rather than first into a concatenated string. `bytes` is counted when it is written.
 */
interface PendingMessage {
  head: string;
  body: string;
  tail: string;
  bytes: number;
}

/** The header of a final text frame from a server (unmasked) carrying `length` bytes. */
function headerLength(length: number): number {
  return length < 126 ? 2 : length < 65_536 ? 4 : 10;
}

function writeHeader(buffer: Buffer, at: number, length: number): number {
  buffer[at] = 0x81;
  if (length < 126) {
    buffer[at + 1] = length;
    return at + 2;
  }
  if (length < 65_536) {
    buffer[at + 1] = 126;
    buffer.writeUInt16BE(length, at + 2);
    return at + 4;
  }
  buffer[at + 1] = 127;
  buffer.writeUInt32BE(Math.floor(length / 2 ** 32), at + 2);
  buffer.writeUInt32BE(length >>> 0, at + 6);
  return at + 10;
}

/** True when a WebSocket asked for the one subprotocol Herald speaks. */
export function speaksGraphqlWs(socket: WebSocket): boolean {
  return socket.protocol === GRAPHQL_TRANSPORT_WS_PROTOCOL;
}

/**
 * The graphql-transport-ws protocol for one socket, with the same close codes and messages as
 * graphql-ws's server. Herald speaks it itself rather than through graphql-ws's `useServer` for
 * the fan-out: a `next` frame is built around a payload serialized once per result (and results
 * are shared by every subscriber with the same operation), and frames are written without waiting
 * for each one to flush. A client that reads slower than its updates come is not buffered for
 * without bound: past a cap its subscriptions pause and later catch up from history, and one that
 * does not drain in time is closed.
 */
export class ProtocolSession {
  private initReceived = false;
  private acknowledged = false;
  private closing = false;
  private readonly running = new Map<string, Operation>();
  /** Until connection_init arrives. */
  private initTimer: NodeJS.Timeout | null;
  /** This tick's messages, sent together on the next (see {@link flush}). */
  private pending: PendingMessage[] = [];
  /** Their length in UTF-16 units: close enough to bytes to tell when the socket is over its limit. */
  private pendingLength = 0;
  /** The pending messages go over maxBufferedBytes: their write resumes the subscriptions once it is flushed. */
  private pendingOverLimit = false;
  /** permessage-deflate was negotiated: ws frames (and compresses) every message. */
  private readonly compressed: boolean;
  /** Running while the socket has more than maxBufferedBytes unsent. */
  private stallTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly socket: WebSocket,
    /**
     * The upgrade request's socket (Node's `upgrade` event hands it to ws and to us), which ws
     * writes this WebSocket's frames to, so ws counts what we write there in `bufferedAmount`.
     */
    private readonly transport: Duplex,
    private readonly hooks: SessionHooks,
    private readonly options: SessionOptions,
  ) {
    this.compressed = socket.extensions.includes('permessage-deflate');
    this.initTimer = setTimeout(() => {
      if (!this.initReceived) this.close(CloseCode.ConnectionInitialisationTimeout, 'Connection initialisation timeout');
    }, options.initTimeoutMs);
    socket.on('message', (data: Buffer) => {
      this.receive(data.toString()).catch(() => this.close(CloseCode.InternalServerError, 'Internal server error'));
    });
    // `on`, not `once`: ws emits 'close' once, and `once` costs every socket a wrapper object and a bound function.
    socket.on('close', (code: number) => {
      this.stopAll();
      hooks.closed(code);
    });
  }

  /** Closes the socket and stops every operation at once, without waiting for the closing handshake. */
  close(code: number, reason: string): void {
    this.socket.close(code, reason);
    this.stopAll();
  }

  private stopAll(): void {
    if (this.closing) return;
    this.closing = true;
    this.clearInitTimer();
    if (this.stallTimer) clearTimeout(this.stallTimer);
    const running = [...this.running.values()];
    this.running.clear();
    for (const operation of running) void operation.stream?.return();
  }

  private async receive(data: string): Promise<void> {
    if (this.closing) return;
    let message: Message;
    try {
      message = parseMessage(data);
    } catch {
      return this.close(CloseCode.BadRequest, 'Invalid message received');
    }
    switch (message.type) {
      case MessageType.ConnectionInit: {
        if (this.initReceived) return this.close(CloseCode.TooManyInitialisationRequests, 'Too many initialisation requests');
        this.initReceived = true;
        this.clearInitTimer();
        const payload = message.payload && typeof message.payload === 'object' ? message.payload : undefined;
        if (!(await this.hooks.init(payload)) || this.closing) return;
        this.acknowledged = true;
        this.write(stringifyMessage({ type: MessageType.ConnectionAck }));
        return;
      }
      case MessageType.Ping:
        this.write(
          stringifyMessage(message.payload ? { type: MessageType.Pong, payload: message.payload } : { type: MessageType.Pong }),
        );
        return;
      case MessageType.Pong:
        return;
      case MessageType.Subscribe:
        return this.subscribe(message.id, message.payload);
      case MessageType.Complete: {
        const operation = this.running.get(message.id);
        this.running.delete(message.id);
        await operation?.stream?.return();
        return;
      }
      default:
        return this.close(CloseCode.BadRequest, `Unexpected message of type ${message.type} received`);
    }
  }

  private clearInitTimer(): void {
    if (this.initTimer) clearTimeout(this.initTimer);
    this.initTimer = null;
  }

  private async subscribe(id: string, payload: SubscribePayload): Promise<void> {
    if (!this.acknowledged) return this.close(CloseCode.Unauthorized, 'Unauthorized');
    if (this.running.has(id)) return this.close(CloseCode.SubscriberAlreadyExists, `Subscriber for ${id} already exists`);
    const operation = new Operation(this, id);
    this.running.set(id, operation);
    try {
      const outcome = await this.hooks.start(operation, payload);
      if ('stream' in outcome) {
        const { stream } = outcome;
        operation.stream = stream;
        if (this.isCurrent(operation)) {
          // Settles the operation when the stream ends or fails.
          stream.pipe(operation);
          return;
        }
        await stream.return();
      } else if (!this.isCurrent(operation)) {
        // Completed (or the socket closed) while it started: nothing more to send.
      } else if ('errors' in outcome) {
        this.running.delete(id);
        this.write(stringifyMessage({ id, type: MessageType.Error, payload: outcome.errors }));
      } else {
        this.next(operation.frameStart, outcome.result);
      }
      operation.settle(null);
    } catch (error) {
      operation.settle({ error });
    }
  }

  /** True while `operation` is the one running under its id. */
  isCurrent(operation: Operation): boolean {
    return this.running.get(operation.id) === operation;
  }

  /**
   * An operation is over: unless the client completed it (or the socket closed) meanwhile, it is
   * told how with `complete` or `error`; then the hooks hear of it.
   */
  settled(operation: Operation, failure: { error: unknown } | null): void {
    const { id } = operation;
    if (this.isCurrent(operation)) {
      this.running.delete(id);
      const message = failure
        ? { id, type: MessageType.Error as const, payload: this.hooks.failed(id, failure.error) }
        : { id, type: MessageType.Complete as const };
      this.write(stringifyMessage(message));
    }
    this.hooks.ended(operation);
  }

  /** Sends a `next` frame; false once the socket has too much unsent (see write). */
  next(frameStart: string, result: ExecutionResult): boolean {
    return this.write(frameStart, this.hooks.serialize(result), '}');
  }

  /**
   * Queues a message, `head + body + tail`, for this tick's write; false once the socket has more
   * than maxBufferedBytes unsent. Subscriptions then stop sending (they catch up from history
   * later), the write carries a callback that resumes them once it is flushed, and a timer closes
   * the socket if it never is.
   */
  private write(head: string, body = '', tail = ''): boolean {
    if (this.closing || this.socket.readyState !== WebSocket.OPEN) return true;
    if (this.pending.length === 0) process.nextTick(() => this.flush());
    this.pending.push({ head, body, tail, bytes: 0 });
    this.pendingLength += head.length + body.length + tail.length;
    if (this.socket.bufferedAmount + this.pendingLength <= this.options.maxBufferedBytes) return true;
    this.pendingOverLimit = true;
    this.stallTimer ??= setTimeout(() => {
      this.hooks.slowConsumer();
      this.close(this.options.slowConsumerCloseCode, 'Too much unread data: reconnect and resume from your last cursor');
    }, this.options.slowConsumerMs);
    return false;
  }

  /**
   * Sends the tick's messages. Uncompressed, they leave as one buffer of final text frames
   * (RFC 6455 5.2: unmasked, unfragmented) in one write to the transport: a replay of a hundred
   * updates, or a subscriber's share of a burst, costs one allocation and one system call. Measured
   * against ws' `send` per message: that took 2.5 times the server CPU per delivery in the S2
   * fan-out, and corking the transport around it let a stalled client grow the API by 477 MB in
   * the slow-consumer fault. ws writes only whole control frames (ping, pong, close) to the
   * transport itself, synchronously, so they fall between messages. With permessage-deflate, ws
   * compresses (asynchronously, in order) and frames every message. Messages still pending when
   * the socket has closed are dropped: the client resumes from its last cursor.
   */
  private flush(): void {
    const messages = this.pending;
    if (messages.length === 0) return;
    const callback = this.pendingOverLimit ? () => this.flushed() : undefined;
    this.pending = [];
    this.pendingLength = 0;
    this.pendingOverLimit = false;
    if (this.socket.readyState !== WebSocket.OPEN) return;
    if (this.compressed) {
      const last = messages.length - 1;
      messages.forEach(({ head, body, tail }, index) =>
        this.socket.send(head + body + tail, index === last ? callback : undefined),
      );
      return;
    }
    let size = 0;
    for (const message of messages) {
      message.bytes = Buffer.byteLength(message.head) + Buffer.byteLength(message.body) + Buffer.byteLength(message.tail);
      size += headerLength(message.bytes) + message.bytes;
    }
    const buffer = Buffer.allocUnsafe(size);
    let at = 0;
    for (const { head, body, tail, bytes } of messages) {
      at = writeHeader(buffer, at, bytes);
      at += buffer.write(head, at);
      if (body) at += buffer.write(body, at);
      if (tail) at += buffer.write(tail, at);
    }
    this.transport.write(buffer, callback);
  }

  /** A frame sent over the limit has gone out: once the rest has too, the subscriptions go on. */
  private flushed(): void {
    if (this.closing || this.socket.bufferedAmount > this.options.maxBufferedBytes) return;
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.stallTimer = null;
    for (const operation of this.running.values()) operation.stream?.resume();
  }
}

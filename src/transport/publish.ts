import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { allows, type ServiceKey, type ServiceKeyAction } from '../auth/service-keys.js';
import type { Config } from '../config.js';
import { ErrorCode } from '../errors.js';
import { ID_PATTERN, ID_RULE } from '../ids.js';
import type { Logger } from '../logger.js';
import { sendText } from '../metrics.js';
import { InvalidNotificationError, NOTIFICATION_LEVELS, TARGET_KINDS } from '../notifications/types.js';
import { refOf, type ResourceKind } from '../resources/registry.js';
import type { Services } from '../schema/builder.js';
import { encodeCursor } from '../updates/cursor.js';
import { StreamEndedError } from '../updates/store.js';
import { UPDATE_STATUSES } from '../updates/types.js';
import { digest, type IdempotencyStore, type StoredAnswer } from './idempotency.js';
import { errorJson, sendErrorJson } from './error-codes.js';
import type { Metrics } from './metrics.js';
import type { RateLimiter } from '../rate-limiter.js';
import { drainRefusedBody } from './refused-body.js';

/** Every path of the publish endpoint starts with this. */
export const PUBLISH_PATH_PREFIX = '/v1/';

export interface PublishHandlerOptions {
  services: Services;
  config: Config;
  idempotency: IdempotencyStore;
  /** Counts each service key's requests (PUBLISH_REQUESTS_PER_MINUTE). */
  limiter: RateLimiter;
  metrics: Metrics;
  logger: Logger;
}

/** A refusal with its HTTP status; answered (and kept for an Idempotency-Key's retries) like any answer. */
class Refusal extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
    readonly extensions: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

const badInput = (message: string, extensions: Record<string, unknown> = {}) =>
  new Refusal(400, ErrorCode.BadUserInput, message, extensions);

/** 409: the request is well-formed but the state it meets forbids it; `reason` says which state. */
const conflict = (reason: string, message: string) => new Refusal(409, ErrorCode.BadUserInput, message, { reason });

const id = z.string().regex(ID_PATTERN, `must be ${ID_RULE}`);

const UpdateBody = z.strictObject({
  event: z.string().regex(/^[A-Za-z0-9_.:-]{1,100}$/, 'must be 1 to 100 letters, digits or _ . : -'),
  status: z.enum(UPDATE_STATUSES),
  progress: z.number().min(0).max(100).nullish(),
  message: z.string().max(10_000).nullish(),
  data: z.json().optional(),
  token: z.string().nullish(),
  text: z.string().nullish(),
  timestamp: z.iso.datetime({ offset: true }).optional(),
});

const NotificationBody = z.strictObject({
  target: z.strictObject({ kind: z.enum(TARGET_KINDS), id: z.string().nullish() }),
  title: z.string(),
  body: z.string().nullish(),
  level: z.enum(NOTIFICATION_LEVELS).nullish(),
  data: z.json().optional(),
});

type Route =
  { action: 'register'; kind: ResourceKind } | { action: 'append'; kind: ResourceKind; id: string } | { action: 'notify' };

const KIND_OF_SEGMENT: Readonly<Record<string, ResourceKind>> = { files: 'file', queries: 'query' };
const SCOPE_OF_KIND: Readonly<Record<ResourceKind, ServiceKeyAction>> = { file: 'PUBLISH_FILES', query: 'PUBLISH_QUERIES' };

function routeOf(path: string): Route | null {
  if (path === '/v1/notifications') return { action: 'notify' };
  const [, segment = '', encodedId, rest] = /^\/v1\/([a-z]+)(?:\/([^/]+)(\/updates))?$/.exec(path) ?? [];
  const kind = KIND_OF_SEGMENT[segment];
  if (!kind) return null;
  if (encodedId === undefined) return { action: 'register', kind };
  if (rest === undefined) return null;
  try {
    return { action: 'append', kind, id: decodeURIComponent(encodedId) };
  } catch {
    return { action: 'append', kind, id: encodedId };
  }
}

function scopeOf(route: Route): ServiceKeyAction {
  return route.action === 'notify' ? 'SEND_NOTIFICATIONS' : SCOPE_OF_KIND[route.kind];
}

/** Parses with `schema`, or refuses naming the first field that is wrong. */
function parse<T>(schema: z.ZodType<T>, value: unknown): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const [issue] = parsed.error.issues;
  const argument = issue?.path.join('.') ?? '';
  throw badInput(`${argument || 'body'}: ${issue?.message ?? 'invalid'}`, { argument });
}

function assertAllowed(key: ServiceKey, action: ServiceKeyAction, projectId: string | null): void {
  if (!allows(key, action, projectId)) {
    const where = projectId === null ? 'outside a project' : `in project ${projectId}`;
    throw new Refusal(403, ErrorCode.Forbidden, `service key ${key.name} may not ${action} ${where}`);
  }
}

/** The body, or null once it passes `maxBytes` (then the rest is left unread, for drainRefusedBody). */
function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= maxBytes) return void chunks.push(chunk);
      req.off('data', onData).off('end', onEnd).off('error', reject);
      resolve(null);
    };
    const onEnd = () => resolve(Buffer.concat(chunks));
    req.on('data', onData).once('end', onEnd).once('error', reject);
  });
}

/** A hex digest shaped as a UUID: the id a registration without one gets from its Idempotency-Key. */
function uuidOf(hex: string): string {
  return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20, 32)].join('-');
}

function sendAnswer(res: ServerResponse, answer: StoredAnswer, replayed: boolean): void {
  if (replayed) res.setHeader('idempotent-replayed', 'true');
  sendText(res, answer.status, JSON.stringify(answer.body), 'application/json');
}

/**
 * The HTTP publish endpoint: how a producer in any language, holding a service key, registers
 * files and queries, appends their updates (through the same update store, and so the same
 * append.lua, as Herald's workers) and sends notifications, with plain JSON over HTTP:
 *
 * - `POST /v1/files`, `POST /v1/queries`: register one (`ownerId`, optional `id`, `projectId`, `name`).
 * - `POST /v1/files/{id}/updates`, `POST /v1/queries/{id}/updates`: append one update.
 * - `POST /v1/notifications`: send one notification.
 *
 * Refusals are JSON bodies like GraphQL's errors (`errors[0].extensions.code`), with HTTP statuses.
 */
export function createPublishHandler(options: PublishHandlerOptions) {
  const { services, config, idempotency, limiter, metrics, logger } = options;
  const { maxBodyBytes } = config.publish;

  const RegisterBody = z.strictObject({
    id: id.optional(),
    ownerId: id,
    projectId: id.nullish(),
    name: z.string().max(config.limits.maxNameLength).nullish(),
  });

  /**
   * Registering is idempotent by itself: the same registration again (same id, kind, owner and
   * project) answers 200 with the record; only an id taken by another is a conflict.
   */
  async function register(key: ServiceKey, kind: ResourceKind, body: unknown, retryId?: string): Promise<StoredAnswer> {
    const input = parse(RegisterBody, body);
    const projectId = input.projectId ?? null;
    assertAllowed(key, SCOPE_OF_KIND[kind], projectId);
    const record = {
      kind,
      id: input.id ?? (retryId ? uuidOf(retryId) : randomUUID()),
      ownerId: input.ownerId,
      projectId,
      name: input.name ?? null,
      createdAt: new Date().toISOString(),
    };
    if (await services.resources.createIfAbsent(record)) return { status: 201, body: record };
    const existing = await services.resources.get(record.id);
    if (existing?.kind === kind && existing.ownerId === record.ownerId && existing.projectId === projectId) {
      return { status: 200, body: existing };
    }
    throw conflict('ID_TAKEN', `a file or query with id ${record.id} exists already`);
  }

  async function append(key: ServiceKey, route: { kind: ResourceKind; id: string }, body: unknown, retryId?: string) {
    if (!ID_PATTERN.test(route.id)) throw badInput(`the id in the path must be ${ID_RULE}`);
    const update = parse(UpdateBody, body);
    const record = await services.resources.get(route.id);
    if (!record || record.kind !== route.kind) {
      throw new Refusal(404, ErrorCode.NotFound, `no ${route.kind} with id ${route.id}`);
    }
    assertAllowed(key, SCOPE_OF_KIND[route.kind], record.projectId);
    try {
      // The trace context stays inside Herald, as it does for GraphQL clients.
      const { traceparent: _traceparent, ...entry } = await services.store.append(refOf(record), update, undefined, retryId);
      return { status: 201, body: { ...entry, cursor: encodeCursor(entry) } };
    } catch (error) {
      if (error instanceof StreamEndedError) throw conflict('STREAM_ENDED', error.message);
      throw error;
    }
  }

  async function notify(key: ServiceKey, body: unknown, retryId?: string): Promise<StoredAnswer> {
    const input = parse(NotificationBody, body);
    const target = { kind: input.target.kind, id: input.target.id ?? null };
    assertAllowed(key, 'SEND_NOTIFICATIONS', target.kind === 'PROJECT' ? target.id : null);
    try {
      const entry = await services.notifications.send({ ...input, target }, retryId);
      return { status: 201, body: entry.notification };
    } catch (error) {
      if (error instanceof InvalidNotificationError) throw badInput(error.message, { argument: error.argument });
      // notify.lua: this Idempotency-Key's notification was sent, and retention has dropped it since.
      if (error instanceof Error && error.message.startsWith('ALREADY_SENT')) throw conflict('ALREADY_SENT', error.message);
      throw error;
    }
  }

  /**
   * Runs the route's action; a refusal becomes its answer, anything else is thrown. `retryId`, from
   * the Idempotency-Key, is the same on every retry: an update's append id, a registration's default id.
   */
  async function act(route: Route, key: ServiceKey, rawBody: Buffer, retryId?: string): Promise<StoredAnswer> {
    try {
      let body: unknown;
      try {
        body = JSON.parse(rawBody.toString('utf8'));
      } catch {
        throw badInput('the body must be a JSON object');
      }
      if (route.action === 'register') return await register(key, route.kind, body, retryId);
      if (route.action === 'append') return await append(key, route, body, retryId);
      return await notify(key, body, retryId);
    } catch (error) {
      if (!(error instanceof Refusal)) throw error;
      metrics.errors.inc({ code: error.code });
      return { status: error.status, body: errorJson(error.code, error.message, error.extensions) };
    }
  }

  function refuse(res: ServerResponse, status: number, code: ErrorCode, message: string, extensions = {}): void {
    metrics.errors.inc({ code });
    sendErrorJson(res, status, code, message, extensions);
  }

  async function authenticate(req: IncomingMessage): Promise<ServiceKey | null> {
    const [, secret] = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '') ?? [];
    return secret === undefined ? null : services.serviceKeys.verify(secret);
  }

  async function handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const route = routeOf(path);
    if (!route) return refuse(res, 404, ErrorCode.NotFound, `no publish endpoint at ${path}`);
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST');
      return refuse(res, 405, ErrorCode.BadUserInput, `${path} takes POST only`);
    }
    const key = await authenticate(req);
    if (!key) {
      metrics.authFailures.inc({ transport: 'http' });
      res.setHeader('www-authenticate', 'Bearer');
      return refuse(res, 401, ErrorCode.Unauthenticated, 'a live service key is required: Authorization: Bearer <key>');
    }
    const waitMs = await limiter.hit(key.id);
    if (waitMs > 0) {
      metrics.limitsHit.inc({ limit: 'publish_requests_per_minute' });
      const retryAfterSeconds = Math.ceil(waitMs / 1000);
      res.setHeader('retry-after', String(retryAfterSeconds));
      return refuse(res, 429, ErrorCode.RateLimited, `too many requests for this key: try again in ${retryAfterSeconds} s`, {
        limit: 'publish_requests_per_minute',
        retryAfterSeconds,
      });
    }
    if (!key.scopes.some((scope) => scope.action === scopeOf(route))) {
      return refuse(res, 403, ErrorCode.Forbidden, `service key ${key.name} may not ${scopeOf(route)}`);
    }
    const [idempotencyKey, ...more] = req.headersDistinct['idempotency-key'] ?? [];
    if (idempotencyKey !== undefined && (more.length > 0 || !/^[\x21-\x7e]{1,255}$/.test(idempotencyKey))) {
      return refuse(res, 400, ErrorCode.BadUserInput, 'one Idempotency-Key of 1 to 255 visible ASCII characters, if any', {
        argument: 'Idempotency-Key',
      });
    }
    const rawBody = Number(req.headers['content-length'] ?? 0) > maxBodyBytes ? null : await readBody(req, maxBodyBytes);
    if (rawBody === null) {
      metrics.limitsHit.inc({ limit: 'publish_body_size' });
      await drainRefusedBody(req, config.limits.refusedBodyDrain);
      res.setHeader('connection', 'close');
      return refuse(res, 413, ErrorCode.BadUserInput, `request body over ${maxBodyBytes} bytes`);
    }
    if (idempotencyKey === undefined) return sendAnswer(res, await act(route, key, rawBody), false);
    // Derived from the key, so even a retry that runs again (its first try's instance died after
    // writing) finds its update, or its registration, stored and gets it back.
    const retryId = digest(key.id, idempotencyKey);
    const outcome = await idempotency.run(key.id, idempotencyKey, digest(path, rawBody.toString('base64')), () =>
      act(route, key, rawBody, retryId),
    );
    if (outcome.kind === 'answer') return sendAnswer(res, outcome.answer, outcome.replayed);
    if (outcome.kind === 'mismatch') {
      return refuse(res, 409, ErrorCode.BadUserInput, 'this Idempotency-Key was used for another request', {
        reason: 'IDEMPOTENCY_KEY_REUSED',
      });
    }
    return refuse(res, 409, ErrorCode.BadUserInput, 'a request with this Idempotency-Key is still running: retry later', {
      reason: 'IDEMPOTENCY_KEY_IN_PROGRESS',
    });
  }

  return async (req: IncomingMessage, res: ServerResponse, path: string): Promise<void> => {
    try {
      await handle(req, res, path);
    } catch (error) {
      logger.error({ err: (error as Error).message, path }, 'publish request failed');
      if (!res.headersSent) refuse(res, 500, ErrorCode.Internal, 'Unexpected error.');
    }
  };
}

export type PublishHandler = ReturnType<typeof createPublishHandler>;

import SchemaBuilder from '@pothos/core';
import type { RevocationList } from '../auth/revocations.js';
import type { ServiceKeyStore } from '../auth/service-keys.js';
import type { TokenVerifier, Viewer } from '../auth/token.js';
import type { Config } from '../config.js';
import type { DocumentStore } from '../jobs/documents.js';
import type { JobControl } from '../jobs/control.js';
import type { NotificationStore } from '../notifications/store.js';
import type { PresenceRegistry } from '../presence/registry.js';
import type { RoomPresence } from '../presence/rooms.js';
import type { ResourceRegistry } from '../resources/registry.js';
import type { UpdateHub } from '../updates/hub.js';
import type { UpdateStore } from '../updates/store.js';
import type { RateLimiter } from '../rate-limiter.js';

/** What resolvers reach: the stores, never Redis connections or the transport. */
export interface Services {
  config: Config;
  store: UpdateStore;
  hub: UpdateHub;
  resources: ResourceRegistry;
  documents: DocumentStore;
  jobs: JobControl;
  notifications: NotificationStore;
  presence: PresenceRegistry;
  /** Who is watching which project and resource. */
  rooms: RoomPresence;
  /** The same verifier the transports use, revocations included. */
  verifyToken: TokenVerifier;
  revocations: RevocationList;
  serviceKeys: ServiceKeyStore;
  /** Counts each user's sendNotification calls (NOTIFY_RATE_LIMIT per NOTIFY_RATE_WINDOW_MS). */
  sendLimiter: RateLimiter;
}

/**
 * The WebSocket an operation came in on, as much of it as a resolver may touch: a way to hand it
 * a fresh token without closing it.
 */
export interface ConnectionHandle {
  /**
   * Makes `viewer` (the same user, from a fresh token) the connection's viewer for operations
   * started from now on, and re-arms its expiry timer for the new token; running subscriptions
   * go on untouched.
   */
  reauthenticate(viewer: Viewer): void;
}

/** Every operation runs for an authenticated viewer: the transport refuses anyone else. */
export interface Context {
  viewer: Viewer;
  services: Services;
  /** Set for operations sent over a WebSocket; HTTP and SSE requests have none. */
  connection?: ConnectionHandle;
  /**
   * The cursor a reconnecting EventSource sends as `Last-Event-ID` (the `id:` of the last event it
   * got on the same URL): subscriptions resume after it rather than after the URL's own `after`.
   */
  lastEventId?: string;
}

/**
 * Set in a subscription field's `extensions` when its result for an event depends on nothing but
 * the event and the selection (not on the viewer or the context): every subscriber sending the
 * same operation can then share one result, and one serialized payload.
 */
export const SHARED_RESULTS = 'heraldSharedResults';

/**
 * Set in a subscription field's `extensions` to a function from one of its events to the cursor
 * of the item it becomes: SSE sends it as the event's `id:` even when the selection has no
 * `cursor`, so a reconnecting EventSource can resume after it.
 */
export const EVENT_CURSOR = 'heraldEventCursor';

export const builder = new SchemaBuilder<{
  Context: Context;
  DefaultFieldNullability: false;
  Scalars: {
    DateTime: { Input: string; Output: string | Date };
    JSON: { Input: unknown; Output: unknown };
    File: { Input: File; Output: never };
  };
}>({
  defaultFieldNullability: false,
});

builder.queryType({});
builder.mutationType({});
builder.subscriptionType({});

import { Counter, Gauge, Histogram } from 'prom-client';
import { ErrorCode } from '../errors.js';
import { createRegistry } from '../metrics.js';
import { recordDelivery } from '../tracing.js';
import type { DeliveryMeter } from '../updates/hub.js';
import { openLiveStreams } from '../updates/live-stream.js';
import { liveAppendedAt } from '../updates/stream.js';
import type { ProjectEntry, UpdateEntry } from '../updates/types.js';
import type { SubscriptionMeter, SubscriptionTransport } from './subscription-execution.js';

/** Every limit that refuses someone, as `herald_limits_hit_total{limit=...}` names it. */
const LIMITS = [
  'connections_per_user',
  'subscriptions_per_connection',
  'mutations_per_minute',
  'websocket_message_size',
  'request_body_size',
  'publish_requests_per_minute',
  'publish_body_size',
] as const;
export type LimitName = (typeof LIMITS)[number];

/** What each subscription field delivers, as `herald_updates_delivered_total{kind}` names it; other fields go by their name. */
const DELIVERED_KIND: Readonly<Record<string, string>> = {
  fileProgress: 'file',
  queryProgress: 'query',
  projectProgress: 'project',
  notifications: 'notification',
};

/** From a millisecond timestamp to tens of seconds: the producer's clock has millisecond resolution. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** From a refused handshake (milliseconds) to a day-long browser tab. */
const CONNECTION_BUCKETS = [0.1, 1, 10, 60, 300, 900, 3600, 4 * 3600, 24 * 3600];

/** Subscribers reached by one message on one instance: from a lone watcher to a 100k-tab broadcast. */
const FANOUT_BUCKETS = [0, 1, 2, 5, 10, 50, 100, 500, 1_000, 5_000, 10_000, 50_000, 100_000];

/**
 * Delivery latency over one transport: the histogram's child for its label, and the mark a live
 * event gets once it has been timed over that transport, so it is observed once per update per
 * stream per transport on an instance, not once per subscriber.
 */
interface TransportLatency {
  timed: symbol;
  observe(seconds: number): void;
}

/** One subscription's share of the metrics: a class, so each subscription costs one object and no closures. */
class OpenSubscription implements SubscriptionMeter {
  constructor(
    private readonly gauge: Gauge<'field' | 'transport'>,
    private readonly labels: { field: string; transport: SubscriptionTransport },
    private readonly tally: { count: number },
    private readonly latency: TransportLatency,
  ) {}

  delivered(event: unknown): void {
    this.tally.count += 1;
    const appendedAt = liveAppendedAt(event);
    if (appendedAt === undefined) return;
    const marks = event as Record<symbol, true>;
    const { timed } = this.latency;
    if (marks[timed]) return;
    marks[timed] = true;
    // A producer outside Herald may send a timestamp that does not parse: no latency, no throw.
    if (Number.isFinite(appendedAt)) this.latency.observe(Math.max(0, Date.now() - appendedAt) / 1000);
  }

  closed(): void {
    this.gauge.dec(this.labels);
  }
}

/**
 * A `herald.deliver` span for a message that carries a trace context (an update, or a project
 * stream's entry of one), a child of the span that published it; notifications carry none.
 */
function traceDelivery(listeners: number, message: unknown): void {
  if (typeof message !== 'object' || message === null) return;
  const { traceparent, item } = message as Partial<UpdateEntry & ProjectEntry>;
  const entry = item ?? (message as Partial<UpdateEntry>);
  const parent = traceparent ?? entry.traceparent;
  if (parent === undefined) return;
  recordDelivery(parent, {
    'herald.subscribers': listeners,
    'herald.stream': item ? 'project' : String(entry.kind),
    'herald.resource.id': String(entry.id),
    'herald.update.seq': Number(entry.seq),
  });
}

/**
 * The API's metrics, in a registry of its own (see createRegistry). Counts on the delivery path
 * are plain numbers bound per subscription and turned into series when /metrics is scraped. With
 * `traceDeliveries` (tracing configured), each message fanned out also records a delivery span;
 * without, the delivery path does no tracing work at all.
 */
export function createMetrics(options: { traceDeliveries?: boolean } = {}) {
  const registry = createRegistry();
  const limitsHit = new Counter({
    name: 'herald_limits_hit_total',
    help: 'Connections, operations and requests refused by a limit, by limit.',
    labelNames: ['limit'] as const,
    registers: [registry],
  });
  // Present from the start at zero, so a dashboard's rate() sees the first hit.
  for (const limit of LIMITS) limitsHit.inc({ limit }, 0);
  const errors = new Counter({
    name: 'herald_errors_total',
    help: 'GraphQL errors sent to clients, by extensions.code; each counted once where it is shaped (masked or validated).',
    labelNames: ['code'] as const,
    registers: [registry],
  });
  for (const code of Object.values(ErrorCode)) errors.inc({ code }, 0);

  const delivered = new Map<string, { count: number }>(Object.values(DELIVERED_KIND).map((kind) => [kind, { count: 0 }]));
  new Counter({
    name: 'herald_updates_delivered_total',
    help:
      'Subscription events handed to subscribers (WebSocket and SSE), one per subscriber, by kind: file, query, ' +
      'project (projectProgress) or notification. Replays and gap notices count; updates held back from a slow client do not.',
    labelNames: ['kind'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [kind, { count }] of delivered) this.inc({ kind }, count);
    },
  });

  const latency = new Histogram({
    name: 'herald_delivery_latency_seconds',
    help:
      "Seconds from an update's append (the producer's `timestamp`, millisecond resolution; producer and API " +
      'clocks must agree) to the moment its result for the first subscriber over a transport on this instance ' +
      'was ready to be written (a WebSocket frame, an SSE event). Once per live update per stream per transport ' +
      'per instance, not per subscriber; replays from history are not observed. Covers fileProgress, ' +
      'queryProgress and projectProgress.',
    labelNames: ['transport'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const latencyOver = (transport: SubscriptionTransport): TransportLatency => {
    const child = latency.labels({ transport });
    return { timed: Symbol(`timed over ${transport}`), observe: (seconds) => child.observe(seconds) };
  };
  const transportLatency: Record<SubscriptionTransport, TransportLatency> = {
    websocket: latencyOver('websocket'),
    sse: latencyOver('sse'),
  };
  const fanOut = new Histogram({
    name: 'herald_update_fanout',
    help:
      'Subscribers on this instance each published message reached (one per update per stream, and per ' +
      'notification): the local listeners of its Redis channel when it arrived.',
    buckets: FANOUT_BUCKETS,
    registers: [registry],
  });
  const deliveries: DeliveryMeter = {
    replayed: 0,
    live: 0,
    resumed: 0,
    gaps: 0,
    fannedOut: options.traceDeliveries
      ? (listeners, message) => {
          fanOut.observe(listeners);
          traceDelivery(listeners, message);
        }
      : (listeners) => fanOut.observe(listeners),
  };
  /** A counter kept as a plain number the delivery path increments, read when /metrics is scraped. */
  const counterOf = (name: string, help: string, read: () => number) =>
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  counterOf(
    'herald_updates_replayed_total',
    'Updates of file, query and project streams handed to a subscriber from history: the replay when a ' +
      'subscription opens, a resume from a cursor, a catch-up after a slow client, a gap or a Redis reconnect.',
    () => deliveries.replayed,
  );
  counterOf(
    'herald_updates_live_total',
    'Updates of file, query and project streams handed to a subscriber as pub/sub delivered them.',
    () => deliveries.live,
  );
  counterOf(
    'herald_resumes_total',
    'File, query and project subscriptions opened from a cursor (`after`): clients resuming after a reconnect.',
    () => deliveries.resumed,
  );
  counterOf(
    'herald_gaps_total',
    'history_gap notices sent: a subscriber asked for updates that were already trimmed, expired, or of an older epoch.',
    () => deliveries.gaps,
  );

  let bufferedBytes: () => number = () => 0;
  new Gauge({
    name: 'herald_websocket_buffered_bytes',
    help:
      'Bytes written for graphql-ws clients that their sockets have not sent yet, summed when scraped: what slow ' +
      'readers hold in this process, at most WS_MAX_BUFFERED_BYTES and a message each.',
    registers: [registry],
    collect() {
      this.set(bufferedBytes());
    },
  });

  const subscriptions = new Gauge({
    name: 'herald_subscriptions',
    help: 'Active subscriptions by field and transport.',
    labelNames: ['field', 'transport'] as const,
    registers: [registry],
  });

  return {
    registry,
    limitsHit,
    errors,
    /** Handed to the update hub: its streams count what they deliver here. */
    deliveries,
    /** Where herald_websocket_buffered_bytes is read from: set by the WebSocket server it measures. */
    measureBufferedBytes(source: () => number): void {
      bufferedBytes = source;
    },
    deadConnections: new Counter({
      name: 'herald_dead_connections_total',
      help: 'WebSockets dropped because they did not answer a keep-alive ping in time.',
      registers: [registry],
    }),
    slowConsumerCloses: new Counter({
      name: 'herald_slow_consumer_closes_total',
      help: 'WebSockets closed because the client stopped reading (close code 4413).',
      registers: [registry],
    }),
    revokedConnections: new Counter({
      name: 'herald_revoked_connections_total',
      help: 'WebSockets closed because an admin revoked their user (close code 4403).',
      registers: [registry],
    }),
    connections: new Gauge({
      name: 'herald_websocket_connections',
      help: 'Open graphql-ws connections.',
      registers: [registry],
    }),
    connectionDuration: new Histogram({
      name: 'herald_websocket_connection_duration_seconds',
      help: 'How long graphql-ws connections lasted, observed when they close, however they closed.',
      buckets: CONNECTION_BUCKETS,
      registers: [registry],
    }),
    liveStreams: new Gauge({
      name: 'herald_live_streams',
      help: 'Update and notification streams open in this process (each holds its Redis channel subscriptions).',
      registers: [registry],
      collect() {
        this.set(openLiveStreams());
      },
    }),
    operations: new Counter({
      name: 'herald_operations_total',
      help: 'GraphQL operations by type and transport.',
      labelNames: ['type', 'transport'] as const,
      registers: [registry],
    }),
    authFailures: new Counter({
      name: 'herald_auth_failures_total',
      help: 'Requests and connections refused for a missing, bad or expired token.',
      labelNames: ['transport'] as const,
      registers: [registry],
    }),

    /** Counts the subscription as open and binds its deliveries to its kind's count. */
    subscriptionOpened(field: string, transport: SubscriptionTransport): SubscriptionMeter {
      const labels = { field, transport };
      subscriptions.inc(labels);
      const kind = DELIVERED_KIND[field] ?? field;
      const tally = delivered.get(kind) ?? { count: 0 };
      delivered.set(kind, tally);
      return new OpenSubscription(subscriptions, labels, tally, transportLatency[transport]);
    },
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

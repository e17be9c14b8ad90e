import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { openLiveStreams } from '../updates/live-stream.js';

/** Every limit that refuses someone, as `herald_limits_hit_total{limit=...}` names it. */
const LIMITS = [
  'connections_per_user',
  'subscriptions_per_connection',
  'mutations_per_minute',
  'websocket_message_size',
  'request_body_size',
] as const;
export type LimitName = (typeof LIMITS)[number];

/** One registry per app, so several apps in one test process never share counters. */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'herald_' });
  const limitsHit = new Counter({
    name: 'herald_limits_hit_total',
    help: 'Connections, operations and requests refused by a limit, by limit.',
    labelNames: ['limit'] as const,
    registers: [registry],
  });
  // Present from the start at zero, so a dashboard's rate() sees the first hit.
  for (const limit of LIMITS) limitsHit.inc({ limit }, 0);
  return {
    registry,
    limitsHit,
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
    liveStreams: new Gauge({
      name: 'herald_live_streams',
      help: 'Update and notification streams open in this process (each holds its Redis channel subscriptions).',
      registers: [registry],
      collect() {
        this.set(openLiveStreams());
      },
    }),
    subscriptions: new Gauge({
      name: 'herald_subscriptions',
      help: 'Active subscriptions by field and transport.',
      labelNames: ['field', 'transport'] as const,
      registers: [registry],
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
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';

/** One registry per app, so several apps in one test process never share counters. */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'herald_' });
  return {
    registry,
    connections: new Gauge({
      name: 'herald_websocket_connections',
      help: 'Open graphql-ws connections.',
      registers: [registry],
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

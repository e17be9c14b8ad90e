import { Counter, type Registry } from 'prom-client';
import { RESOURCE_KINDS } from '../resources/registry.js';
import type { UpdateStore } from '../updates/store.js';

/**
 * The store, with each update this process appends counted by resource kind once Redis has
 * stored it, as `herald_updates_published_total{kind}`. Counted here, in the producer (a worker's
 * progress, the API's `queued` and early `cancelled`), rather than in the store every process
 * shares for reading too.
 */
export function countPublished(store: UpdateStore, registry: Registry): UpdateStore {
  const published = new Counter({
    name: 'herald_updates_published_total',
    help: 'Updates this process appended to a resource stream (stored and published in Redis), by resource kind.',
    labelNames: ['kind'] as const,
    registers: [registry],
  });
  for (const kind of RESOURCE_KINDS) published.inc({ kind }, 0);
  return {
    ...store,
    async append(ref, input, body) {
      const entry = await store.append(ref, input, body);
      published.inc({ kind: ref.kind });
      return entry;
    },
  };
}

import type { Queue } from 'bullmq';
import { Counter, Gauge, type Registry } from 'prom-client';
import { RESOURCE_KINDS } from '../resources/registry.js';
import { withTimeout } from '../timeouts.js';
import { activeTraceparent, inSpan, SpanKind } from '../tracing.js';
import type { UpdateStore } from '../updates/store.js';
import { STUCK_REASONS, stuckJobs, type StuckSettings } from './stuck.js';

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
    async append(ref, input, body, appendId, traceparent) {
      const entry = await store.append(ref, input, body, appendId, traceparent);
      published.inc({ kind: ref.kind });
      return entry;
    },
  };
}

/**
 * The store, with each append a `herald.publish` span (a child of the active span: the mutation
 * or the job attempt) whose trace context the entry carries to every subscriber's API instance.
 * Returns `store` itself when tracing is off (`traced` false), so an update costs no span work then.
 */
export function tracePublished(store: UpdateStore, traced: boolean): UpdateStore {
  if (!traced) return store;
  return {
    ...store,
    append(ref, input, body, appendId) {
      const attributes = { 'herald.resource.kind': ref.kind, 'herald.resource.id': ref.id, 'herald.update.event': input.event };
      return inSpan('herald.publish', { kind: SpanKind.PRODUCER, attributes }, () =>
        store.append(ref, input, body, appendId, activeTraceparent()),
      );
    },
  };
}

/** States of a BullMQ queue an operator watches: work piling up, running, retrying, failed for good. */
const QUEUE_STATES = ['waiting', 'active', 'delayed', 'failed'] as const;

/** How long a scrape waits for Redis before it leaves the queue series out: /metrics must answer while Redis is away. */
const SCRAPE_WAIT_MS = 2_000;

/**
 * `herald_queue_jobs{queue,state}` and `herald_queue_workers{queue}`, read from Redis at each scrape
 * of the API's /metrics: jobs piling up in a queue that no worker consumes is what the
 * HeraldNoWorkers alert (deploy/prometheus/alerts.yml) looks for. Every instance reports the same
 * figures; rules aggregate with max by (queue).
 */
export function watchQueues(registry: Registry, queues: ReadonlyArray<Queue>, stuck: StuckSettings): void {
  new Gauge({
    name: 'herald_queue_jobs',
    help: 'Jobs in each BullMQ queue by state (waiting, active, delayed, failed), read when /metrics is scraped.',
    labelNames: ['queue', 'state'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      const counts = await withTimeout(
        Promise.all(queues.map((queue) => queue.getJobCounts(...QUEUE_STATES))),
        SCRAPE_WAIT_MS,
        null,
      );
      counts?.forEach((byState, i) => {
        for (const state of QUEUE_STATES) this.set({ queue: queues[i]!.name, state }, byState[state] ?? 0);
      });
    },
  });
  new Gauge({
    name: 'herald_queue_workers',
    help: 'Worker processes consuming each BullMQ queue (connections BullMQ names for it), read when /metrics is scraped.',
    labelNames: ['queue'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      const counts = await withTimeout(Promise.all(queues.map((queue) => queue.getWorkersCount())), SCRAPE_WAIT_MS, null);
      counts?.forEach((count, i) => this.set({ queue: queues[i]!.name }, count));
    },
  });
  new Gauge({
    name: 'herald_jobs_stuck',
    help:
      'Jobs that look stuck, by BullMQ queue and reason: NO_WORKER, waiting longer than JOB_STUCK_AFTER_MS in a queue ' +
      'no worker consumes; NO_HEARTBEAT, active with no heartbeat from its worker for JOB_HEARTBEAT_TIMEOUT_MS ' +
      '(of the oldest 1,000 of each), read when /metrics is scraped.',
    labelNames: ['queue', 'reason'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      const found = await withTimeout(Promise.all(queues.map((queue) => stuckJobs(queue, stuck))), SCRAPE_WAIT_MS, null);
      found?.forEach((jobs, i) => {
        for (const reason of STUCK_REASONS) {
          this.set({ queue: queues[i]!.name, reason }, jobs.filter((job) => job.reason === reason).length);
        }
      });
    },
  });
}

import type { Redis } from 'ioredis';
import type { JobKind } from '../config.js';
import type { NotificationStore } from '../notifications/store.js';
import { QUEUE_OF, stuckJobs, type Queues } from './queues.js';

/** How often the API looks for stuck jobs: twice per JOB_STUCK_AFTER_MS, between 0.5 s and 30 s. */
function checkEveryMs(stuckAfterMs: number): number {
  return Math.min(30_000, Math.max(500, Math.round(stuckAfterMs / 2)));
}

/**
 * Tells admins (a WARNING notification to role `admin`) once about each job that has waited past
 * JOB_STUCK_AFTER_MS in a queue no worker consumes. Every API instance looks; a flag per job in
 * Redis (SET NX) makes exactly one of them send it.
 */
export function createStuckWatcher(deps: {
  redis: Redis;
  keyPrefix: string;
  stuckAfterMs: number;
  queues: Queues;
  notifications: NotificationStore;
  onError: (error: Error) => void;
}) {
  const { redis, keyPrefix, stuckAfterMs, queues, notifications } = deps;
  const kindOf = (queue: string) => (Object.keys(QUEUE_OF) as JobKind[]).find((kind) => queue.startsWith(QUEUE_OF[kind]))!;
  let timer: NodeJS.Timeout | null = null;

  async function check(): Promise<void> {
    for (const queue of queues.all) {
      for (const job of await stuckJobs(queue, stuckAfterMs)) {
        const first = await redis.set(`${keyPrefix}stuck_notified:{${job.id}}`, '1', 'EX', 24 * 3600, 'NX');
        if (first !== 'OK') continue;
        const kind = kindOf(queue.name);
        await notifications.send({
          target: { kind: 'ROLE', id: 'admin' },
          level: 'WARNING',
          title: `A ${kind} job is stuck: no worker consumes ${queue.name}`,
          body: `Job ${job.id} has waited ${Math.round((Date.now() - job.timestamp) / 1000)} s.`,
          data: { kind: kind.toUpperCase(), id: job.id, reason: 'NO_WORKER' },
        });
      }
    }
  }

  return {
    start(): void {
      timer = setInterval(() => void check().catch(deps.onError), checkEveryMs(stuckAfterMs));
      timer.unref();
    },
    stop(): void {
      if (timer) clearInterval(timer);
      timer = null;
    },
  };
}

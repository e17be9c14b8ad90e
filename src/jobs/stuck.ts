import type { Job, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { JobKind } from '../config.js';
import type { NotificationStore } from '../notifications/store.js';
import { hasHeartbeat } from './heartbeat.js';
import type { Queues } from './queues.js';

/**
 * Why a job looks stuck: NO_WORKER, it has waited past JOB_STUCK_AFTER_MS in a queue no worker
 * consumes; NO_HEARTBEAT, it is active but its worker has not refreshed its heartbeat for
 * JOB_HEARTBEAT_TIMEOUT_MS (the worker died, is frozen or hangs, and BullMQ has not noticed yet).
 */
export const STUCK_REASONS = ['NO_WORKER', 'NO_HEARTBEAT'] as const;
export type StuckReason = (typeof STUCK_REASONS)[number];

/** What deciding whether a job is stuck needs: where heartbeats live and the two thresholds. */
export interface StuckSettings {
  redis: Redis;
  keyPrefix: string;
  stuckAfterMs: number;
  heartbeatTimeoutMs: number;
}

/** A job found stuck, and why. */
export interface StuckJob {
  job: Job;
  reason: StuckReason;
}

/** Jobs per queue and state that stuckJobs looks at, the oldest first. */
const STUCK_SCAN = 1_000;

function waitedTooLong(job: Job, settings: StuckSettings, now: number): boolean {
  return now - job.timestamp > settings.stuckAfterMs;
}

/** An attempt that started before the heartbeat timeout has had time to beat at least once. */
function ranPastHeartbeat(job: Job, settings: StuckSettings, now: number): boolean {
  return job.processedOn !== undefined && !job.finishedOn && now - job.processedOn > settings.heartbeatTimeoutMs;
}

/**
 * Why one job looks stuck, given its state as `job(id)` reports it (`WAITING`, `ACTIVE`, ...), or
 * null while it does not.
 */
export async function stuckReason(
  queue: Queue,
  job: Job,
  state: string,
  settings: StuckSettings,
  now = Date.now(),
): Promise<StuckReason | null> {
  if (state === 'WAITING' && waitedTooLong(job, settings, now) && (await queue.getWorkersCount()) === 0) return 'NO_WORKER';
  if (state === 'ACTIVE' && ranPastHeartbeat(job, settings, now)) {
    const [alive] = await hasHeartbeat(settings.redis, settings.keyPrefix, [job.id!]);
    if (!alive) return 'NO_HEARTBEAT';
  }
  return null;
}

async function waitingWithNoWorker(queue: Queue, settings: StuckSettings, now: number): Promise<Job[]> {
  if ((await queue.getWorkersCount()) > 0) return [];
  const oldest = await queue.getJobs(['waiting'], 0, STUCK_SCAN - 1, true);
  return oldest.filter((job) => waitedTooLong(job, settings, now));
}

/** Only the active jobs without a heartbeat are read in full. */
async function activeWithNoHeartbeat(queue: Queue, settings: StuckSettings, now: number): Promise<Job[]> {
  const ids = await queue.getRanges(['active'], 0, STUCK_SCAN - 1, true);
  const alive = await hasHeartbeat(settings.redis, settings.keyPrefix, ids);
  const silent = await Promise.all(ids.filter((_, i) => !alive[i]).map((id) => queue.getJob(id)));
  return silent.filter((job): job is Job => job !== undefined && ranPastHeartbeat(job, settings, now));
}

/** The stuck jobs of `queue` (among its 1,000 oldest waiting and 1,000 oldest active). */
export async function stuckJobs(queue: Queue, settings: StuckSettings): Promise<StuckJob[]> {
  const now = Date.now();
  const [noWorker, noHeartbeat] = await Promise.all([
    waitingWithNoWorker(queue, settings, now),
    activeWithNoHeartbeat(queue, settings, now),
  ]);
  return [
    ...noWorker.map((job) => ({ job, reason: 'NO_WORKER' as const })),
    ...noHeartbeat.map((job) => ({ job, reason: 'NO_HEARTBEAT' as const })),
  ];
}

/** How often the API looks for stuck jobs: twice per the shorter threshold, between 0.5 s and 30 s. */
function checkEveryMs(settings: StuckSettings): number {
  const shorter = Math.min(settings.stuckAfterMs, settings.heartbeatTimeoutMs);
  return Math.min(30_000, Math.max(500, Math.round(shorter / 2)));
}

/** What admins are told about a stuck job, by reason. */
function notice(kind: JobKind, queue: string, { job, reason }: StuckJob, settings: StuckSettings) {
  const seconds = (since: number) => Math.round((Date.now() - since) / 1000);
  return reason === 'NO_WORKER'
    ? {
        title: `A ${kind} job is stuck: no worker consumes ${queue}`,
        body: `Job ${job.id} has waited ${seconds(job.timestamp)} s.`,
      }
    : {
        title: `A ${kind} job is stuck: its worker sends no heartbeat`,
        body:
          `Job ${job.id} has run ${seconds(job.processedOn!)} s; its worker has not refreshed its heartbeat ` +
          `for over ${Math.round(settings.heartbeatTimeoutMs / 1000)} s.`,
      };
}

/**
 * Tells admins (a WARNING notification to role `admin`) once about each job and reason it is
 * stuck for. Every API instance looks; a flag per job and reason in Redis (SET NX) makes exactly
 * one of them send it.
 */
export function createStuckWatcher(deps: {
  settings: StuckSettings;
  queues: Queues;
  notifications: NotificationStore;
  onError: (error: Error) => void;
}) {
  const { settings, queues, notifications } = deps;
  const { redis, keyPrefix } = settings;
  let timer: NodeJS.Timeout | null = null;

  async function check(): Promise<void> {
    for (const queue of queues.all) {
      for (const stuck of await stuckJobs(queue, settings)) {
        const flag = `${keyPrefix}stuck_notified:{${stuck.job.id}}:${stuck.reason}`;
        if ((await redis.set(flag, '1', 'EX', 24 * 3600, 'NX')) !== 'OK') continue;
        const kind = queues.kindOf(queue);
        await notifications.send({
          target: { kind: 'ROLE', id: 'admin' },
          level: 'WARNING',
          ...notice(kind, queue.name, stuck, settings),
          data: { kind: kind.toUpperCase(), id: stuck.job.id, reason: stuck.reason },
        });
      }
    }
  }

  return {
    start(): void {
      timer = setInterval(() => void check().catch(deps.onError), checkEveryMs(settings));
      timer.unref();
    },
    stop(): void {
      if (timer) clearInterval(timer);
      timer = null;
    },
  };
}

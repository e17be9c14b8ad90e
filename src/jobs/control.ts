import { randomUUID } from 'node:crypto';
import type { Job as BullJob } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../config.js';
import { ignoreStreamEnded, type UpdateStore } from '../updates/store.js';
import type { Cursor } from '../updates/cursor.js';
import { isTerminal, type UpdateEntry } from '../updates/types.js';
import { requestCancel, withdrawCancel } from './cancel.js';
import type { AcceptedDocument, DocumentStore, QueryQuestion } from './documents.js';
import { activeTraceparent } from '../tracing.js';
import { jobOptions, type FileJobData, type QueryJobData, type Queues } from './queues.js';
import { stuckReason, type StuckReason, type StuckSettings } from './stuck.js';
import {
  refOf,
  type ListPosition,
  type ResourceKind,
  type ResourceRecord,
  type ResourceRegistry,
} from '../resources/registry.js';

export type JobState = 'WAITING' | 'DELAYED' | 'ACTIVE' | 'COMPLETED' | 'FAILED' | 'CANCELLED';

/** A job as clients see it: BullMQ's state, with progress and cancellation from the update stream. */
export interface JobView {
  id: string;
  kind: ResourceKind;
  ownerId: string;
  state: JobState;
  progress: number | null;
  attemptsMade: number;
  failedReason: string | null;
  /** Set while the job looks stuck: waiting with no worker consuming its queue, or active with no heartbeat. */
  stuck: StuckReason | null;
  result: unknown;
  createdAt: string;
  finishedAt: string | null;
}

/** What a listing asks for: whose jobs (null: everyone's), from where, how many, which. */
export interface JobListing {
  ownerId: string | null;
  after: ListPosition | null;
  first: number;
  kind: ResourceKind | null;
  state: JobState | null;
}

/**
 * One page of a listing, newest first; `endCursor` is where the next page starts (null: nothing
 * was read). `hasNextPage` may be true before a page that turns out empty under a filter.
 */
export interface JobPage {
  items: Array<{ job: JobView; position: ListPosition }>;
  hasNextPage: boolean;
  endCursor: ListPosition | null;
}

/** Jobs a listing reads per step, and at most per page: a filter that matches little cannot make a page unbounded. */
const LIST_BATCH = 50;
const LIST_MAX_SCANNED = 1_000;

/** A job just started: its record, its state, and the stream position before its first update. */
export interface Started {
  record: ResourceRecord;
  job: JobView;
  start: Cursor;
}

/** A retry or removal asked of a job whose state does not allow it: the message says why. */
export class JobStateError extends Error {}

/** The states of a BullMQ queue the dashboard counts. */
export const QUEUE_STATES = ['waiting', 'active', 'delayed', 'failed', 'completed'] as const;

/** One queue as operators see it: its workers, its jobs per state, and its latest failed jobs. */
export interface QueueOverview {
  name: string;
  kind: ResourceKind;
  workers: number;
  counts: Record<(typeof QUEUE_STATES)[number], number>;
  failed: JobView[];
}

const BULL_STATES: Record<string, JobState> = {
  completed: 'COMPLETED',
  failed: 'FAILED',
  delayed: 'DELAYED',
  active: 'ACTIVE',
};

export interface JobControlDeps {
  config: Config;
  redis: Redis;
  queues: Queues;
  resources: ResourceRegistry;
  documents: DocumentStore;
  store: UpdateStore;
  stuck: StuckSettings;
}

/**
 * The API's side of jobs: start one (record, first update, enqueue), report it, cancel it from
 * any instance. Callers have already validated input and checked who may do what.
 */
export function createJobControl({ config, redis, queues, resources, documents, store, stuck: stuckSettings }: JobControlDeps) {
  /**
   * Announces and enqueues a job (recording it first when it is new; reopening its stream when it
   * is retried); returns where its stream starts, so no update is missed.
   */
  async function enqueue(record: ResourceRecord, start: () => Promise<unknown>, retried = false): Promise<Started> {
    if (retried) await store.reopen(refOf(record));
    else await resources.create(record);
    const queued = await store.append(refOf(record), {
      event: 'queued',
      status: 'QUEUED',
      progress: 0,
      message: retried ? 'Retried on request; waiting for a worker' : 'Waiting for a worker',
    });
    await start();
    return { record, job: await view(record), start: { epoch: queued.epoch, seq: queued.seq - 1 } };
  }

  function bullJob(record: ResourceRecord): Promise<BullJob | undefined> {
    return queues.of(record.kind, record.id).getJob(record.id);
  }

  async function view(record: ResourceRecord): Promise<JobView> {
    // The state first, then the job: a job read after its state has at least that state's counts.
    // Read the other way round, a job that completed in between was shown with the counts it had
    // while active (no attempt made yet) and the state completed.
    const bullState = await queues.of(record.kind, record.id).getJobState(record.id);
    const [job, recent] = await Promise.all([bullJob(record), store.resourceHistory(refOf(record))({ last: 10 })]);
    const latest: UpdateEntry | undefined = recent.entries.at(-1);
    // The stream's terminal update is the job's outcome: a worker publishes it as an attempt's last
    // step, a moment before BullMQ records the attempt's end (longer while that write waits out a
    // failover), and a cancelled job's record may still say active. Until BullMQ catches up, the
    // attempt that ended the stream counts as made.
    const outcome = recent.final && latest && isTerminal(latest.update.status) ? latest.update.status : null;
    const state: JobState = outcome ?? BULL_STATES[bullState] ?? 'WAITING';
    const attemptsMade = outcome && job && bullState === 'active' ? job.attemptsStarted : (job?.attemptsMade ?? 0);
    const stuck = job ? await stuckReason(queues.of(record.kind, record.id), job, state, stuckSettings) : null;
    const progress = recent.entries.findLast((e) => typeof e.update.progress === 'number')?.update.progress ?? null;
    const ended = recent.final && latest ? latest.update.timestamp : null;
    return {
      id: record.id,
      kind: record.kind,
      ownerId: record.ownerId,
      state,
      progress,
      attemptsMade,
      // BullMQ keeps an earlier attempt's reason on a job that then completed: it no longer explains anything.
      failedReason: state === 'CANCELLED' || state === 'COMPLETED' ? null : (job?.failedReason ?? null),
      stuck,
      result: job?.returnvalue ?? null,
      createdAt: record.createdAt,
      finishedAt: job?.finishedOn ? new Date(job.finishedOn).toISOString() : ended,
    };
  }

  /** A file's job: all it needs is in its record (its text waits in the document store). */
  function addFile(record: ResourceRecord) {
    const data: FileJobData = {
      fileId: record.id,
      ownerId: record.ownerId,
      projectId: record.projectId,
      name: record.name ?? '',
      traceparent: activeTraceparent(),
    };
    return queues.file(record.id).add('process', data, jobOptions(config, record.id));
  }

  function addQuery(record: ResourceRecord, { question, fileIds }: QueryQuestion) {
    const data: QueryJobData = {
      queryId: record.id,
      ownerId: record.ownerId,
      projectId: record.projectId,
      question,
      fileIds,
      traceparent: activeTraceparent(),
    };
    return queues.query(record.id).add('answer', data, jobOptions(config, record.id));
  }

  /**
   * Adds a job BullMQ no longer holds again, from what is kept beside its record (a file's text
   * in the document store, a query's question); null when that has gone.
   */
  async function addAgain(record: ResourceRecord): Promise<(() => Promise<unknown>) | null> {
    if (record.kind === 'file') return () => addFile(record);
    const question = await documents.loadQuestion(record.id);
    return question && (() => addQuery(record, question));
  }

  function newRecord(kind: ResourceKind, ownerId: string, projectId: string | null, name: string | null): ResourceRecord {
    return { kind, id: randomUUID(), ownerId, projectId, name, createdAt: new Date().toISOString() };
  }

  /**
   * Lists jobs newest first, filtered by kind and state. The state is read from each job (BullMQ
   * and its stream), so a page reads at most LIST_MAX_SCANNED jobs: past that it ends early with
   * `hasNextPage` and an `endCursor` that continues the scan.
   */
  async function list({ ownerId, after, first, kind, state }: JobListing): Promise<JobPage> {
    const items: JobPage['items'] = [];
    let endCursor = after;
    for (let scanned = 0; scanned < LIST_MAX_SCANNED;) {
      const wanted = first - items.length;
      // A full page only asks whether anything follows; otherwise read a little more than is missing.
      const positions = await resources.list(ownerId, endCursor, wanted === 0 ? 1 : Math.min(LIST_BATCH, wanted + 1));
      if (positions.length === 0) return { items, hasNextPage: false, endCursor };
      if (wanted === 0) return { items, hasNextPage: true, endCursor };
      scanned += positions.length;
      const records = await Promise.all(positions.map((position) => resources.get(position.id)));
      const jobs = await Promise.all(
        records.map((record) => (record && (kind === null || record.kind === kind) ? view(record) : Promise.resolve(null))),
      );
      for (const [i, job] of jobs.entries()) {
        if (items.length === first) break;
        endCursor = positions[i]!;
        if (job && (state === null || job.state === state)) items.push({ job, position: endCursor });
      }
    }
    return { items, hasNextPage: true, endCursor };
  }

  return {
    view,
    list,
    cancel,

    async startFile(input: { ownerId: string; projectId: string | null; name: string; document: AcceptedDocument }) {
      const record = newRecord('file', input.ownerId, input.projectId, input.name);
      await documents.saveContent(record.id, input.document);
      return enqueue(record, () => addFile(record));
    },

    async startQuery(input: { ownerId: string; projectId: string | null } & QueryQuestion) {
      const record = newRecord('query', input.ownerId, input.projectId, null);
      const question = { question: input.question, fileIds: input.fileIds };
      await documents.saveQuestion(record.id, question);
      return enqueue(record, () => addQuery(record, question));
    },

    /**
     * Runs a failed or cancelled job again: a new attempt on the same stream, whose seq goes on
     * (a `queued` update first, so a subscriber resuming from its last cursor sees the new attempt
     * from its start). BullMQ's failed job is retried with its attempts reset; a job BullMQ no
     * longer holds (cancelled while waiting, or finished over a day ago) is added again from what
     * its record keeps (a file's text, a query's question). Returns where the new attempt's
     * updates start.
     */
    async retry(record: ResourceRecord): Promise<Started> {
      const current = await view(record);
      if (current.state !== 'FAILED' && current.state !== 'CANCELLED') {
        throw new JobStateError(`only a failed or cancelled job can be retried; this one is ${current.state}`);
      }
      const job = await bullJob(record);
      if (job && (await job.getState()) !== 'failed') throw new JobStateError('this job is being retried already');
      const start = job
        ? () => job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true })
        : await addAgain(record);
      if (!start) throw new JobStateError(`this ${record.kind} is no longer kept; start it again`);
      await withdrawCancel(redis, config.keyPrefix, record.id);
      return enqueue(record, start, true);
    },

    /**
     * Every queue's workers and counts, with its latest `failedFirst` failed jobs (newest first)
     * as `job(id)` reports them: for the operators' dashboard.
     */
    async overview(failedFirst: number): Promise<QueueOverview[]> {
      return Promise.all(
        queues.all.map(async (queue) => {
          const [workers, counts, failedJobs] = await Promise.all([
            queue.getWorkersCount(),
            queue.getJobCounts(...QUEUE_STATES),
            queue.getJobs(['failed'], 0, failedFirst - 1),
          ]);
          const records = await Promise.all(failedJobs.map((job) => resources.get(job.id!)));
          const failed = await Promise.all(records.filter((record) => record !== null).map((record) => view(record)));
          return {
            name: queue.name,
            kind: queues.kindOf(queue),
            workers,
            counts: Object.fromEntries(QUEUE_STATES.map((state) => [state, counts[state] ?? 0])) as QueueOverview['counts'],
            failed,
          };
        }),
      );
    },

    /**
     * Takes a job out of its queue: a waiting or delayed one is cancelled (its stream ends with
     * CANCELLED), a finished one is dropped from BullMQ (its stream and record stay, so `job(id)`
     * still reports how it ended); a running one must be cancelled first.
     */
    async remove(record: ResourceRecord): Promise<JobView> {
      const job = await bullJob(record);
      const state = job ? await job.getState() : 'unknown';
      if (state === 'active') throw new JobStateError('a running job cannot be removed; cancel it first');
      if (!job || (state !== 'completed' && state !== 'failed')) return cancel(record);
      await job.remove();
      return view(record);
    },
  };

  /**
   * Cancels a job wherever it is: a waiting or delayed one is removed here and its stream
   * ends with CANCELLED; a running one is told through Redis and its worker publishes CANCELLED
   * at its next step. Cancelling a finished job changes nothing.
   */
  async function cancel(record: ResourceRecord): Promise<JobView> {
    const job = await bullJob(record);
    const state = job ? await job.getState() : 'unknown';
    if (state === 'completed' || state === 'failed') return view(record);
    await requestCancel(redis, config.keyPrefix, record.id);
    if (job && state !== 'active') {
      const removed = await job.remove().then(
        () => true,
        () => false,
      );
      if (removed) await markCancelled(record);
    } else if (!job) {
      await markCancelled(record);
    }
    return view(record);
  }

  async function markCancelled(record: ResourceRecord): Promise<void> {
    await store
      .append(refOf(record), { event: 'cancelled', status: 'CANCELLED', message: 'Cancelled before it started' })
      .catch(ignoreStreamEnded);
  }
}

export type JobControl = ReturnType<typeof createJobControl>;

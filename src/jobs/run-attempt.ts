import { Backoffs, UnrecoverableError, type Job } from 'bullmq';
import type { JobTimeouts } from '../config.js';
import type { BodyPiece } from '../updates/body.js';
import { ignoreStreamEnded, StreamEndedError, type UpdateStore } from '../updates/store.js';
import { isTerminal, type ResourceRef, type UpdateEntry, type UpdateInput } from '../updates/types.js';
import { inSpan, SpanKind } from '../tracing.js';
import type { CancelWatcher } from './cancel.js';
import type { TracedJobData } from './queues.js';

/** What a processor gets: a signal that fires on cancel or timeout, and its resource's publisher. */
export interface JobContext {
  signal: AbortSignal;
  /**
   * Appends an update to the job's resource (and a piece to its body, see UpdateStore.append);
   * throws once the job was cancelled or timed out.
   */
  publish: (update: UpdateInput, body?: BodyPiece) => Promise<UpdateEntry>;
}

/** The reason BullMQ records for a cancelled job. */
const CANCELLED_REASON = 'cancelled';

/** How a job ended for good: completed with its result, or failed on its last attempt. */
export type JobOutcome<T> = { ok: true; result: T } | { ok: false; reason: string };

/**
 * How one attempt ended, as the worker counts and logs it: `retried` when another attempt follows
 * (whatever the cause), the rest for good. `cancelled` includes a job whose stream had already
 * ended when it ran (cancelled while waiting).
 */
export type AttemptOutcome = 'completed' | 'failed' | 'timed_out' | 'cancelled' | 'retried';

/** Ends a job for good (BullMQ does not retry an UnrecoverableError), saying how. */
export class JobEndedError extends UnrecoverableError {
  constructor(
    readonly outcome: Exclude<AttemptOutcome, 'completed' | 'retried'>,
    reason: string,
  ) {
    super(reason);
  }
}

export interface AttemptOptions<T> {
  job: Job;
  ref: ResourceRef;
  store: UpdateStore;
  cancels: CancelWatcher;
  timeouts: JobTimeouts;
  /** Event name of the terminal failure update, e.g. processing_failed. */
  failedEvent: string;
  /**
   * The attempt itself. `context.signal` fires on cancel and at the soft timeout; `stop` fires at
   * the hard timeout, when `work` must reject at once, whatever its code is doing (job-threads.ts).
   */
  work: (context: JobContext, stop: AbortSignal) => Promise<T>;
  /**
   * Called once the job has ended for good (after its terminal update), never on a retry or a
   * cancel: the owner is told here. It runs beside the job's own completion, which it must neither
   * hold up nor fail, so it returns nothing and must not throw.
   */
  onFinished?: (outcome: JobOutcome<T>) => void;
}

/** Where a stream stands between attempts; any other last event means an attempt died mid-way. */
const BETWEEN_ATTEMPTS = new Set(['queued', 'attempt_failed']);

/**
 * Runs one attempt of a job and tells its subscribers how it ended: a cancel publishes
 * CANCELLED, a failure that will be retried says so (status QUEUED), the last one publishes FAILED
 * with the reason. BullMQ has no per-job timeout, so ours is enforced through the same signal (the
 * soft timeout) and, for a job that does not stop when asked, by `stop` (the hard timeout).
 * When the previous attempt's worker died mid-way (BullMQ hands a stalled job to another worker),
 * the stream says so before the job starts again from the beginning.
 */
export function runAttempt<T>(options: AttemptOptions<T>): Promise<T> {
  const { job, ref } = options;
  const attributes = {
    'herald.job.id': String(job.id),
    'herald.job.queue': job.queueName,
    'herald.job.attempt': job.attemptsMade + 1,
    'herald.resource.kind': ref.kind,
  };
  // A child of the mutation that started the job: its publishes are children of this span.
  const { traceparent } = job.data as TracedJobData;
  return inSpan('herald.attempt', { kind: SpanKind.CONSUMER, attributes, traceparent }, () => attempt(options));
}

async function attempt<T>(options: AttemptOptions<T>): Promise<T> {
  const { job, ref, store, cancels, timeouts, failedEvent } = options;
  const last = (await store.resourceHistory(ref)({ last: 1 })).entries[0];
  if (last && !BETWEEN_ATTEMPTS.has(last.update.event) && !isTerminal(last.update.status)) {
    await store.append(ref, {
      event: 'attempt_interrupted',
      status: 'QUEUED',
      message: 'The worker running this job stopped; starting it again from the beginning.',
      data: { lastEvent: last.update.event, lastSeq: last.seq },
    });
  }
  const cancel = await cancels.watch(job.id!);
  const signal = AbortSignal.any([cancel.signal, AbortSignal.timeout(timeouts.softMs)]);
  const stop = AbortSignal.timeout(timeouts.hardMs);
  const publish = (update: UpdateInput, body?: BodyPiece) => {
    signal.throwIfAborted();
    return store.append(ref, update, body);
  };
  let result: T;
  try {
    result = await options.work({ signal, publish }, stop);
  } catch (error) {
    if (error instanceof StreamEndedError) throw new JobEndedError('cancelled', error.message);
    if (cancel.signal.aborted) {
      await store
        .append(ref, { event: 'cancelled', status: 'CANCELLED', message: 'Cancelled on request' })
        .catch(ignoreStreamEnded);
      throw new JobEndedError('cancelled', CANCELLED_REASON);
    }
    const timedOut = signal.aborted;
    const reason = stop.aborted
      ? `timed out after ${timeouts.softMs} ms and did not stop; stopped after ${timeouts.hardMs} ms`
      : timedOut
        ? `timed out after ${timeouts.softMs} ms`
        : (error as Error).message;
    const attempt = job.attemptsMade + 1;
    const attempts = job.opts.attempts ?? 1;
    if (error instanceof UnrecoverableError || attempt >= attempts) {
      await store
        .append(ref, { event: failedEvent, status: 'FAILED', message: reason, data: { attempt, attempts } })
        .catch(ignoreStreamEnded);
      options.onFinished?.({ ok: false, reason });
      throw new JobEndedError(timedOut ? 'timed_out' : 'failed', reason);
    }
    // BullMQ's own delay before the next attempt, counting this one as made, as BullMQ does.
    const backoff = Backoffs.normalize(job.opts.backoff ?? 0);
    const retryInMs = backoff ? ((await Backoffs.calculate(backoff, attempt, error as Error, job)) ?? 0) : 0;
    await store.append(ref, {
      event: 'attempt_failed',
      status: 'QUEUED',
      message: `Attempt ${attempt} of ${attempts} failed: ${reason}. Retrying in ${retryInMs} ms.`,
      data: { attempt, attempts, reason, retryInMs },
    });
    throw new Error(reason, { cause: error });
  } finally {
    cancel.release();
  }
  options.onFinished?.({ ok: true, result });
  return result;
}

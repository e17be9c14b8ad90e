import { AsyncResource } from 'node:async_hooks';
import { Worker } from 'node:worker_threads';
import { UnrecoverableError } from 'bullmq';
import type { JobKind } from '../config.js';
import type { AnswerSettings } from './answer-query.js';
import type { DocumentStore } from './documents.js';
import type { FileProcessingSettings } from './process-file.js';
import type { JobContext } from './run-attempt.js';

/** What a job thread is started with: the processors' settings and, optionally, another answer generator. */
export interface JobThreadData {
  settings: { files: FileProcessingSettings; answers: AnswerSettings };
  /** URL of a module whose default export makes the AnswerGenerator; null: the extractive one. */
  generator: string | null;
}

/** The document store methods a processor may call from its thread. */
export const DOCUMENT_METHODS = ['loadContent', 'saveSentences', 'loadSentences', 'processedFiles'] as const;
type DocumentMethod = (typeof DOCUMENT_METHODS)[number];

/** The messages between a worker's main thread and a job thread; `run` numbers one attempt. */
export type ToThread =
  | { type: 'run'; run: number; kind: JobKind; data: unknown }
  | { type: 'abort'; run: number }
  | { type: 'reply'; id: number; ok: true; value: unknown }
  | { type: 'reply'; id: number; ok: false; message: string };

export type FromThread =
  | { type: 'ready'; run?: undefined }
  | { type: 'call'; run: number; id: number; method: DocumentMethod | 'publish'; args: unknown[] }
  | { type: 'done'; run: number; value: unknown }
  | { type: 'failed'; run: number; message: string; unrecoverable: boolean; relayed: number | null };

/** The thread entry, loaded through tsx's loader as every entry point of Herald is. */
const BOOT = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))})
  .then((tsx) => tsx.register())
  .then(() => import(${JSON.stringify(new URL('./job-thread.ts', import.meta.url).href)}));`;

/**
 * Runs job processors in worker threads, so a job can be stopped even when its code never looks
 * at its signal: a thread is terminated (and replaced by a new one when needed) at the hard
 * timeout, and the worker's own event loop, which renews BullMQ's locks, is never blocked by a
 * job. Threads are kept and reused, since starting one (loading its modules) costs far more than
 * a small job. A processor reaches Redis through the main thread: its updates go through the
 * worker's update store (one store, one published-updates counter) and its documents through the
 * worker's document store, so a thread holds no connection.
 */
export function createJobThreads(options: {
  data: JobThreadData;
  documents: DocumentStore;
  /** An idle thread that failed (it is dropped; the next job starts another). */
  onError: (error: Error) => void;
  /** Threads kept started, so a job rarely waits for one to load (a terminated one is replaced at once). */
  warm: number;
}) {
  const idle: Worker[] = [];
  const live = new Set<Worker>();
  /** Threads still loading their modules. */
  const loading = new Set<Promise<void>>();
  let runs = 0;
  let closed = false;

  function spawn(): Worker {
    const thread = new Worker(BOOT, { eval: true, workerData: options.data });
    live.add(thread);
    const loaded = new Promise<void>((resolve) => {
      const onReady = (message: FromThread) => {
        if (message.type !== 'ready') return;
        thread.off('message', onReady);
        resolve();
      };
      thread.on('message', onReady).once('exit', () => resolve());
    });
    loading.add(loaded);
    void loaded.then(() => loading.delete(loaded));
    const drop = () => {
      live.delete(thread);
      if (idle.includes(thread)) idle.splice(idle.indexOf(thread), 1);
    };
    thread.on('error', (error) => {
      if (idle.includes(thread)) options.onError(error);
      drop();
    });
    thread.on('exit', drop);
    return thread;
  }

  /**
   * Runs one attempt of a job of `kind` in a thread: `context.signal` is passed on to the
   * processor; when `stop` fires the thread is terminated and the attempt rejects at once.
   */
  /** Keeps `warm` threads started. */
  function replenish(): void {
    while (!closed && live.size < options.warm) idle.push(spawn());
  }

  function run<T>(kind: JobKind, data: unknown, context: JobContext, stop: AbortSignal): Promise<T> {
    const thread = idle.pop() ?? spawn();
    const run = ++runs;
    /** Errors of the calls made for the processor, handed back as they were when it rethrows one. */
    const relayed = new Map<number, Error>();
    // A thread's publishes arrive as messages; they run in the attempt's async context (its trace
    // span, when tracing is on), as they would had the processor run here.
    const publish = AsyncResource.bind((...args: Parameters<JobContext['publish']>) => context.publish(...args));
    return new Promise<T>((resolve, reject) => {
      const post = (message: ToThread) => {
        if (live.has(thread)) thread.postMessage(message);
      };
      const abort = () => post({ type: 'abort', run });
      const discard = (error: Error) => {
        finish();
        live.delete(thread);
        void thread.terminate();
        replenish();
        reject(error);
      };
      const kill = () => discard(new Error('stopped: its thread was terminated'));
      const exited = (code: number) => discard(new Error(`its thread exited with code ${code}`));
      const answer = ({ id, method, args }: Extract<FromThread, { type: 'call' }>) => {
        // Async, so a call that throws at once (publish after an abort) is an answer like any other.
        const call = async () =>
          method === 'publish'
            ? publish(...(args as Parameters<JobContext['publish']>))
            : (options.documents[method] as (...params: unknown[]) => Promise<unknown>)(...args);
        call().then(
          (value) => post({ type: 'reply', id, ok: true, value }),
          (error: Error) => {
            relayed.set(id, error);
            post({ type: 'reply', id, ok: false, message: error.message });
          },
        );
      };
      const receive = (message: FromThread) => {
        if (message.run !== run) return;
        if (message.type === 'call') return answer(message);
        finish();
        idle.push(thread);
        if (message.type === 'done') return resolve(message.value as T);
        const Failure = message.unrecoverable ? UnrecoverableError : Error;
        reject((message.relayed !== null && relayed.get(message.relayed)) || new Failure(message.message));
      };
      function finish() {
        context.signal.removeEventListener('abort', abort);
        stop.removeEventListener('abort', kill);
        thread.off('message', receive).off('error', discard).off('exit', exited);
      }
      thread.on('message', receive).once('error', discard).once('exit', exited);
      post({ type: 'run', run, kind, data });
      if (context.signal.aborted) abort();
      else context.signal.addEventListener('abort', abort, { once: true });
      if (stop.aborted) kill();
      else stop.addEventListener('abort', kill, { once: true });
    });
  }

  replenish();

  return {
    run,
    /** Resolves once the threads started so far have loaded their modules (or failed to). */
    async ready(): Promise<void> {
      await Promise.all(loading);
    },
    /** Terminates every thread; call once no job runs any more. */
    async close(): Promise<void> {
      closed = true;
      const threads = [...live];
      live.clear();
      idle.length = 0;
      await Promise.all(threads.map((thread) => thread.terminate()));
    },
  };
}

export type JobThreads = ReturnType<typeof createJobThreads>;

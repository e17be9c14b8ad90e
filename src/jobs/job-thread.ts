import { parentPort, workerData } from 'node:worker_threads';
import { UnrecoverableError } from 'bullmq';
import type { JobKind } from '../config.js';
import { createExtractiveGenerator } from './answer/extractive.js';
import type { AnswerGenerator } from './answer/generator.js';
import { answerQuery } from './answer-query.js';
import type { DocumentStore } from './documents.js';
import { DOCUMENT_METHODS, type FromThread, type JobThreadData, type ToThread } from './job-threads.js';
import { processFile } from './process-file.js';
import type { FileJobData, QueryJobData } from './queues.js';
import type { JobContext } from './run-attempt.js';

// A job thread (see job-threads.ts): runs one attempt at a time, reaching Redis through the main thread.
const port = parentPort!;
const { settings, generator: generatorModule } = workerData as JobThreadData;
const generator: Promise<AnswerGenerator> = generatorModule
  ? import(generatorModule).then((module: { default: () => AnswerGenerator }) => module.default())
  : Promise.resolve(createExtractiveGenerator({ maxSentences: settings.answers.maxSentences }));
const running = new Map<number, AbortController>();
const waiting = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
let calls = 0;

const send = (message: FromThread) => port.postMessage(message);

async function start(run: number, kind: JobKind, data: unknown): Promise<void> {
  const controller = new AbortController();
  running.set(run, controller);
  const call = (method: Extract<FromThread, { type: 'call' }>['method'], args: unknown[]) =>
    new Promise<unknown>((resolve, reject) => {
      const id = ++calls;
      waiting.set(id, { resolve, reject });
      send({ type: 'call', run, id, method, args });
    });
  const context: JobContext = {
    signal: controller.signal,
    publish: (update, body) => call('publish', [update, body]) as ReturnType<JobContext['publish']>,
  };
  const documents = Object.fromEntries(
    DOCUMENT_METHODS.map((method) => [method, (...args: unknown[]) => call(method, args)]),
  ) as unknown as DocumentStore;
  try {
    const value =
      kind === 'file'
        ? await processFile(data as FileJobData, documents, settings.files, context)
        : await answerQuery(data as QueryJobData, documents, await generator, settings.answers, context);
    send({ type: 'done', run, value });
  } catch (error) {
    const { message, relayed } = error as Error & { relayed?: number };
    send({ type: 'failed', run, message, unrecoverable: error instanceof UnrecoverableError, relayed: relayed ?? null });
  } finally {
    running.delete(run);
  }
}

void generator.then(() => send({ type: 'ready' }));

port.on('message', (message: ToThread) => {
  if (message.type === 'run') void start(message.run, message.kind, message.data);
  else if (message.type === 'abort') running.get(message.run)?.abort();
  else {
    const call = waiting.get(message.id);
    waiting.delete(message.id);
    if (message.ok) call?.resolve(message.value);
    else call?.reject(Object.assign(new Error(message.message), { relayed: message.id }));
  }
});

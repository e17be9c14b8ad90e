/**
 * `npx tsx bench/job-threads.ts [--jobs 300] [--sections 1]`: what running a job in a job thread
 * costs (src/jobs/job-threads.ts), without Redis: one document job processed in the process and
 * in a warm thread, one after another, with the document store and publish answered in memory, so
 * the difference is the threads' own cost (messages for every update and document call). Also
 * prints how long a thread takes to load and what it adds to the process's RSS.
 */
import { parseArgs } from 'node:util';
import type { DocumentStore } from '../src/jobs/documents.js';
import { createJobThreads } from '../src/jobs/job-threads.js';
import { processFile } from '../src/jobs/process-file.js';
import type { JobContext } from '../src/jobs/run-attempt.js';

const { values: options } = parseArgs({
  options: { jobs: { type: 'string', default: '300' }, sections: { type: 'string', default: '1' } },
});
const jobs = Number(options.jobs);
const content = '# Doc\nHerald is a progress server. Why use it? It keeps 100 updates per resource.\n'.repeat(
  Number(options.sections),
);
const documents = {
  loadContent: () => Promise.resolve(content),
  saveSentences: () => Promise.resolve(),
  loadSentences: () => Promise.resolve(null),
  processedFiles: () => Promise.resolve([]),
} as unknown as DocumentStore;
const settings = {
  files: { chunkChars: 2000, classifyBatch: 25, progressUpdates: 50 },
  answers: { tokenFlushTokens: 8, tokenFlushMs: 50, candidates: 20, maxSentences: 3 },
};
const data = { fileId: 'f', ownerId: 'o', projectId: null, name: 'doc.md' };
let updates = 0;
const context = (): JobContext => ({
  signal: new AbortController().signal,
  publish: () => {
    updates += 1;
    return Promise.resolve({} as Awaited<ReturnType<JobContext['publish']>>);
  },
});
const never = new AbortController().signal;
const inProcess = () => processFile(data, documents, settings.files, context());

await inProcess();
const rssBefore = process.memoryUsage().rss;
const loading = performance.now();
const threads = createJobThreads({ documents, data: { settings, generator: null }, onError: console.error, warm: 1 });
await threads.ready();
const loadMs = performance.now() - loading;
const inThread = () => threads.run('file', data, context(), never);

async function msPerJob(run: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < 20; i += 1) await run();
  const started = performance.now();
  for (let i = 0; i < jobs; i += 1) await run();
  return (performance.now() - started) / jobs;
}
const inline = await msPerJob(inProcess);
updates = 0;
const threaded = await msPerJob(inThread);
const rssAfter = process.memoryUsage().rss;
await threads.close();
console.log(
  JSON.stringify({
    jobs,
    updatesPerJob: updates / (jobs + 20),
    inProcessMsPerJob: Number(inline.toFixed(3)),
    inThreadMsPerJob: Number(threaded.toFixed(3)),
    threadLoadMs: Math.round(loadMs),
    threadRssMb: Math.round((rssAfter - rssBefore) / 2 ** 20),
  }),
);

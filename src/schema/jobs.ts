import { JobStateError, type JobPage, type JobView, type QueueOverview, type Started } from '../jobs/control.js';
import type { AcceptedDocument } from '../jobs/documents.js';
import { inspectPdf, looksLikePdf, UnreadablePdfError } from '../jobs/text/pdf.js';
import { ID_PATTERN } from '../ids.js';
import type { ListPosition } from '../resources/registry.js';
import { encodeCursor } from '../updates/cursor.js';
import { builder, type Context } from './builder.js';
import { accessibleResource, assertAdmin, badInput, memberProject } from './guards.js';
import { PageInfoRef } from './page-info.js';
import { ResourceKindEnum } from './progress.js';

const JobStateEnum = builder.enumType('JobState', {
  values: ['WAITING', 'DELAYED', 'ACTIVE', 'COMPLETED', 'FAILED', 'CANCELLED'] as const,
});

const JobStuckEnum = builder.enumType('JobStuckReason', {
  values: {
    NO_WORKER: { value: 'NO_WORKER', description: 'Waiting past JOB_STUCK_AFTER_MS with no worker consuming its queue.' },
    NO_HEARTBEAT: {
      value: 'NO_HEARTBEAT',
      description:
        'Active, but its worker has not refreshed its heartbeat for JOB_HEARTBEAT_TIMEOUT_MS: the worker died, is ' +
        'frozen or hangs, and BullMQ has not handed the job on yet.',
    },
  } as const,
});

const JobRef = builder.objectRef<JobView>('Job').implement({
  description: 'The BullMQ job behind a file or query. Its id is the file or query id.',
  fields: (t) => ({
    id: t.exposeID('id'),
    kind: t.field({
      type: ResourceKindEnum,
      description: 'Whether it processes a file or answers a query.',
      resolve: (job) => job.kind,
    }),
    ownerId: t.exposeID('ownerId', { description: 'The user who started it.' }),
    state: t.field({ type: JobStateEnum, resolve: (job) => job.state }),
    progress: t.exposeFloat('progress', { nullable: true, description: 'The latest progress its updates reported.' }),
    attemptsMade: t.exposeInt('attemptsMade'),
    failedReason: t.exposeString('failedReason', {
      nullable: true,
      description:
        'Why the job failed, or why its last attempt did while a retry waits; null once it completed or was cancelled.',
    }),
    stuck: t.field({
      type: JobStuckEnum,
      nullable: true,
      description: 'Why the job looks stuck, while it does; null otherwise.',
      resolve: (job) => job.stuck,
    }),
    result: t.field({ type: 'JSON', nullable: true, resolve: (job) => job.result ?? null }),
    createdAt: t.field({ type: 'DateTime', resolve: (job) => job.createdAt }),
    finishedAt: t.field({ type: 'DateTime', nullable: true, resolve: (job) => job.finishedAt }),
  }),
});

/** A position in a job listing as clients see it: opaque, base64url of `<created ms>:<id>`. */
function encodeListCursor(position: ListPosition): string {
  return Buffer.from(`${position.at}:${position.id}`).toString('base64url');
}

function decodeListCursor(value: string): ListPosition {
  const text = Buffer.from(value, 'base64url').toString();
  const split = text.indexOf(':');
  const at = Number(text.slice(0, split));
  const id = text.slice(split + 1);
  if (split < 1 || !Number.isSafeInteger(at) || !ID_PATTERN.test(id)) badInput('after', 'after is not a cursor of this list');
  return { at, id };
}

type JobItem = JobPage['items'][number];

const JobEdgeRef = builder.objectRef<JobItem>('JobEdge').implement({
  fields: (t) => ({
    cursor: t.string({ resolve: (item) => encodeListCursor(item.position) }),
    node: t.field({ type: JobRef, resolve: (item) => item.job }),
  }),
});

const JobConnectionRef = builder.objectRef<JobPage>('JobConnection').implement({
  fields: (t) => ({
    edges: t.field({ type: [JobEdgeRef], resolve: (page) => page.items }),
    pageInfo: t.field({
      type: PageInfoRef,
      resolve: (page) => ({
        hasNextPage: page.hasNextPage,
        endCursor: page.endCursor && encodeListCursor(page.endCursor),
      }),
    }),
  }),
});

const DEFAULT_PAGE = 20;
const MAX_PAGE = 100;

const START_CURSOR = {
  description:
    'The position before the first update. Pass it as `after` to receive every update from the start, ' +
    'however far the job has got by the time you subscribe.',
  resolve: (started: Started) => encodeCursor(started.start),
};

const FileProcessingRef = builder.objectRef<Started>('FileProcessing').implement({
  fields: (t) => ({
    fileId: t.id({ resolve: (s) => s.record.id }),
    job: t.field({ type: JobRef, resolve: (s) => s.job }),
    cursor: t.string(START_CURSOR),
  }),
});

const QueryProcessingRef = builder.objectRef<Started>('QueryProcessing').implement({
  fields: (t) => ({
    queryId: t.id({ resolve: (s) => s.record.id }),
    job: t.field({ type: JobRef, resolve: (s) => s.job }),
    cursor: t.string(START_CURSOR),
  }),
});

const JobRetryRef = builder.objectRef<Started>('JobRetry').implement({
  fields: (t) => ({
    job: t.field({ type: JobRef, resolve: (s) => s.job }),
    cursor: t.string({
      description:
        "The position before the new attempt's first update: the stream's seq goes on, so a subscriber that saw " +
        'the job end resumes from its last cursor, or from this one, and misses nothing of the new attempt.',
      resolve: (s) => encodeCursor(s.start),
    }),
  }),
});

const StartFileProcessingInput = builder.inputType('StartFileProcessingInput', {
  fields: (t) => ({
    name: t.string({ required: true }),
    content: t.string({ description: 'UTF-8 text. Exactly one of content and file.' }),
    file: t.field({ type: 'File', description: 'A multipart upload of a text, markdown or PDF file.' }),
    projectId: t.id({ description: 'Shares the file with the project and adds it to projectProgress.' }),
  }),
});

const StartQueryInput = builder.inputType('StartQueryInput', {
  fields: (t) => ({
    question: t.string({ required: true }),
    fileIds: t.idList({ description: "Processed files to answer from; all of the viewer's files when absent." }),
    projectId: t.id(),
  }),
});

const TEXT_TYPES = /^(text\/|application\/(json|xml|x-markdown|markdown)|$)/;
const PDF_TYPE = 'application/pdf';

function projectOf(context: Context, projectId: string | number | null | undefined, argument: string): string | null {
  if (projectId === null || projectId === undefined) return null;
  return memberProject(context, String(projectId), argument);
}

/** What an upload or `content` holds, checked before anything is queued. */
async function acceptedDocument(
  input: { content?: string | null; file?: File | null },
  context: Context,
): Promise<AcceptedDocument> {
  const { maxContentBytes, maxUploadBytes } = context.services.config.limits;
  const hasContent = input.content !== null && input.content !== undefined;
  const hasFile = input.file !== null && input.file !== undefined;
  if (hasContent === hasFile) badInput('input', 'give exactly one of content and file');
  if (hasContent) {
    const bytes = Buffer.byteLength(input.content!);
    if (bytes > maxContentBytes) badInput('input.content', `content is ${bytes} bytes; at most ${maxContentBytes} are accepted`);
    if (input.content!.trim() === '') badInput('input.content', 'content is empty');
    return { format: 'text', text: input.content! };
  }
  const file = input.file!;
  if (file.size > maxUploadBytes)
    badInput('input.file', `the file is ${file.size} bytes; at most ${maxUploadBytes} are accepted`);
  const bytes = new Uint8Array(await file.arrayBuffer());
  // A browser sends a file type it does not know as application/octet-stream: a PDF is known by its first bytes.
  if (file.type === PDF_TYPE || looksLikePdf(bytes)) {
    try {
      await inspectPdf(bytes);
    } catch (error) {
      if (error instanceof UnreadablePdfError) badInput('input.file', error.message);
      throw error;
    }
    return { format: 'pdf', bytes };
  }
  if (!TEXT_TYPES.test(file.type))
    badInput('input.file', `files of type ${file.type} are not supported; send text, markdown or PDF`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    badInput('input.file', 'the file is not UTF-8 text');
  }
  if (text.trim() === '') badInput('input.file', 'the file is empty');
  return { format: 'text', text };
}

builder.queryField('job', (t) =>
  t.field({
    type: JobRef,
    nullable: true,
    description: 'A job by id (the id of its file or query). An unknown id is null with a NOT_FOUND error.',
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, args, context) => context.services.jobs.view(await accessibleResource(context, String(args.id), null)),
  }),
);

builder.queryField('myJobs', (t) =>
  t.field({
    type: JobConnectionRef,
    description:
      "Newest first: the viewer's jobs (with `everyone: true`, admins only, everyone's), optionally of one kind " +
      'and in one state. `first` is 1 to 100 (default 20); `after` is an edge `cursor` or `pageInfo.endCursor`. ' +
      'A page reads at most 1,000 jobs, so under a filter that matches few it may end early with `hasNextPage`.',
    args: {
      first: t.arg.int(),
      after: t.arg.string(),
      kind: t.arg({ type: ResourceKindEnum }),
      state: t.arg({ type: JobStateEnum }),
      everyone: t.arg.boolean(),
    },
    resolve: async (_root, args, context) => {
      const first = args.first ?? DEFAULT_PAGE;
      if (!Number.isInteger(first) || first < 1 || first > MAX_PAGE) badInput('first', `first must be 1 to ${MAX_PAGE}`);
      const after = args.after === null || args.after === undefined ? null : decodeListCursor(args.after);
      if (args.everyone) assertAdmin(context, "list everyone's jobs");
      return context.services.jobs.list({
        ownerId: args.everyone ? null : context.viewer.id,
        after,
        first,
        kind: args.kind ?? null,
        state: args.state ?? null,
      });
    },
  }),
);

builder.mutationField('startFileProcessing', (t) =>
  t.field({
    type: FileProcessingRef,
    description: 'Starts processing a document; watch it with fileProgress(fileId).',
    args: { input: t.arg({ type: StartFileProcessingInput, required: true }) },
    resolve: async (_root, { input }, context) => {
      const { maxNameLength } = context.services.config.limits;
      const name = input.name.trim();
      if (name === '' || name.length > maxNameLength) badInput('input.name', `name must be 1 to ${maxNameLength} characters`);
      const projectId = projectOf(context, input.projectId, 'input.projectId');
      const document = await acceptedDocument(input, context);
      return context.services.jobs.startFile({ ownerId: context.viewer.id, projectId, name, document });
    },
  }),
);

builder.mutationField('startQuery', (t) =>
  t.field({
    type: QueryProcessingRef,
    description: 'Asks a question of processed files; watch the answer stream with queryProgress(queryId).',
    args: { input: t.arg({ type: StartQueryInput, required: true }) },
    resolve: async (_root, { input }, context) => {
      const { maxQuestionLength, maxFileIds } = context.services.config.limits;
      const question = input.question.trim();
      if (question === '' || question.length > maxQuestionLength) {
        badInput('input.question', `question must be 1 to ${maxQuestionLength} characters`);
      }
      const projectId = projectOf(context, input.projectId, 'input.projectId');
      let fileIds: string[] | null = null;
      if (input.fileIds) {
        if (input.fileIds.length === 0 || input.fileIds.length > maxFileIds) {
          badInput('input.fileIds', `fileIds must list 1 to ${maxFileIds} files`);
        }
        fileIds = [...new Set(input.fileIds.map(String))];
        for (const id of fileIds) await accessibleResource(context, id, 'file', 'input.fileIds');
      }
      return context.services.jobs.startQuery({ ownerId: context.viewer.id, projectId, question, fileIds });
    },
  }),
);

builder.mutationField('cancelJob', (t) =>
  t.field({
    type: JobRef,
    description:
      'Cancels a job from any API instance: a waiting one is removed at once; a running one stops at its ' +
      'next step. Either way its stream ends with a CANCELLED update. A finished job is returned unchanged.',
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, args, context) =>
      context.services.jobs.cancel(await accessibleResource(context, String(args.id), null)),
  }),
);

/** Runs a job operation, refusing a state that does not allow it with BAD_USER_INPUT on `id`. */
async function inAllowedState<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (error instanceof JobStateError) badInput('id', error.message);
    throw error;
  }
}

builder.mutationField('retryJob', (t) =>
  t.field({
    type: JobRetryRef,
    description:
      'Runs a FAILED or CANCELLED job again: a new attempt on the same stream (a `queued` update, then the ' +
      'attempt), its seq going on, also when it was cancelled before it started. Any other state is BAD_USER_INPUT. ' +
      "The job's owner, its project's members and admins may retry it.",
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, args, context) => {
      const record = await accessibleResource(context, String(args.id), null, 'id', true);
      return inAllowedState(() => context.services.jobs.retry(record));
    },
  }),
);

const JobQueueCountsRef = builder.objectRef<QueueOverview['counts']>('JobQueueCounts').implement({
  description: 'Jobs in a queue by BullMQ state (finished jobs are kept a day).',
  fields: (t) => ({
    waiting: t.exposeInt('waiting'),
    active: t.exposeInt('active'),
    delayed: t.exposeInt('delayed', { description: 'Waiting out the backoff before another attempt.' }),
    failed: t.exposeInt('failed'),
    completed: t.exposeInt('completed'),
  }),
});

const JobQueueRef = builder.objectRef<QueueOverview>('JobQueue').implement({
  description: "A BullMQ queue, as the operators' dashboard shows it.",
  fields: (t) => ({
    name: t.exposeString('name'),
    kind: t.field({ type: ResourceKindEnum, resolve: (queue) => queue.kind }),
    workers: t.exposeInt('workers', { description: 'Worker connections consuming it, as BullMQ counts them.' }),
    counts: t.field({ type: JobQueueCountsRef, resolve: (queue) => queue.counts }),
    failed: t.field({
      type: [JobRef],
      description: 'Its latest failed jobs, newest first, each with its failedReason.',
      resolve: (queue) => queue.failed,
    }),
  }),
});

const MAX_FAILED_SHOWN = 100;

builder.queryField('jobQueues', (t) =>
  t.field({
    type: [JobQueueRef],
    description:
      "Admins only: every job queue's workers, counts per state and latest failed jobs (`failedFirst`, 1 to 100, " +
      'default 20, per queue). Anyone else gets FORBIDDEN.',
    args: { failedFirst: t.arg.int() },
    resolve: async (_root, args, context) => {
      assertAdmin(context, 'see the job queues');
      const failedFirst = args.failedFirst ?? DEFAULT_PAGE;
      if (!Number.isInteger(failedFirst) || failedFirst < 1 || failedFirst > MAX_FAILED_SHOWN) {
        badInput('failedFirst', `failedFirst must be 1 to ${MAX_FAILED_SHOWN}`);
      }
      return context.services.jobs.overview(failedFirst);
    },
  }),
);

builder.mutationField('removeJob', (t) =>
  t.field({
    type: JobRef,
    description:
      'Admins only: takes a job out of its queue. A waiting or delayed one is cancelled (its stream ends with ' +
      'CANCELLED); a finished one is dropped from the queue, while its stream and job(id) still say how it ended. ' +
      'A running one is BAD_USER_INPUT (cancel it first); anyone else gets FORBIDDEN.',
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, args, context) => {
      assertAdmin(context, 'remove jobs');
      const record = await accessibleResource(context, String(args.id), null, 'id', true);
      return inAllowedState(() => context.services.jobs.remove(record));
    },
  }),
);

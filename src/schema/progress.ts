import type { Room } from '../presence/rooms.js';
import { refOf, type ResourceKind } from '../resources/registry.js';
import { encodeCursor } from '../updates/cursor.js';
import { mapStream, type EventStream } from '../updates/event-stream.js';
import type { UpdateStore } from '../updates/store.js';
import {
  CursorAheadError,
  openStream,
  type BodyOfEntries,
  type HistoryGap,
  type OpenStreamOptions,
  type StreamEvent,
} from '../updates/stream.js';
import {
  isTerminal,
  type ProjectEntry,
  type StreamEntry,
  type Update,
  type UpdateEntry,
  type UpdateStatus,
  UPDATE_STATUSES,
} from '../updates/types.js';
import { builder, EVENT_CURSOR, SHARED_RESULTS, type Context } from './builder.js';
import { accessibleResource, badInput, memberProject, resumeCursor } from './guards.js';
import { HistoryGapRef } from './history-gap.js';

/**
 * One item of a resource stream as the schema serves it: a stored update, or a gap notice. Every
 * field's value is in place under the field's own name, so the fields need no resolvers and a
 * compiled query reads them as plain properties (a resolver per field per update was most of the
 * cost of executing one).
 */
interface ItemFields {
  kind: 'file' | 'query';
  cursor: string;
  seq: number;
  event: string;
  status: UpdateStatus;
  progress: number | null;
  message: string | null;
  timestamp: string;
  data: unknown;
  gap: HistoryGap | null;
}

interface FileItem extends ItemFields {
  kind: 'file';
  fileId: string;
}

interface QueryItem extends ItemFields {
  kind: 'query';
  queryId: string;
  token: string | null;
  /** The answer so far, or how to read it (a project stream's entries come without their body). */
  text: string | null | TextLoader;
}

/** Reads an answer's text from the query's body the first time a subscriber selects it; shared by all. */
class TextLoader {
  private text: Promise<string> | null = null;

  constructor(private readonly read: () => Promise<string>) {}

  load(): Promise<string> {
    return (this.text ??= this.read());
  }
}

type ProgressItem = FileItem | QueryItem;

interface ProjectItem {
  cursor: string;
  update: ProgressItem;
  gap: HistoryGap | null;
}

/** Stands for "no history" in cursors handed out while a stream has none. */
const NO_EPOCH = '0';

function itemOf(
  kind: ResourceKind,
  id: string,
  seq: number,
  epoch: string | null,
  update: Update,
  gap: HistoryGap | null,
  body: string | TextLoader | null,
): ProgressItem {
  const cursor = encodeCursor({ epoch: epoch ?? NO_EPOCH, seq });
  const { event, status, timestamp } = update;
  const progress = update.progress ?? null;
  const message = update.message ?? null;
  const data = update.data ?? null;
  if (kind === 'file') return { kind, fileId: id, cursor, seq, event, status, progress, message, timestamp, data, gap };
  const token = update.token ?? null;
  const text = body ?? update.text ?? null;
  return { kind, queryId: id, cursor, seq, event, status, progress, message, timestamp, data, gap, token, text };
}

/**
 * The store keeps kinds as producers gave them; every producer of a stream the API serves uses a
 * ResourceKind. `body` is the text of the entry's body range, or how to read it.
 */
function fromEntry(entry: UpdateEntry, body: string | TextLoader | null): ProgressItem {
  return itemOf(entry.kind as ResourceKind, entry.id, entry.seq, entry.epoch, entry.update, null, body);
}

function fromGap(kind: ResourceKind, id: string, gap: HistoryGap, latest: UpdateEntry | null): ProgressItem {
  const update: Update = {
    event: 'history_gap',
    status: latest?.update.status ?? 'QUEUED',
    message:
      gap.reason === 'TRIMMED'
        ? `Updates up to ${gap.resumesAfter} are no longer kept; continuing after them.`
        : 'The history this cursor belongs to was lost; starting again from the oldest update kept.',
    timestamp: new Date().toISOString(),
    data: { reason: gap.reason, resumesAfter: gap.resumesAfter },
  };
  return itemOf(kind, id, gap.resumesAfter, gap.epoch, update, gap, null);
}

export const ResourceKindEnum = builder.enumType('ResourceKind', {
  values: { FILE: { value: 'file' }, QUERY: { value: 'query' } } as const,
});

const UpdateStatusEnum = builder.enumType('UpdateStatus', {
  values: UPDATE_STATUSES,
});

const ProgressUpdateRef = builder.interfaceRef<ProgressItem>('ProgressUpdate').implement({
  description: 'One update on one resource (a file being processed, a query being answered).',
  resolveType: (item) => (item.kind === 'file' ? 'FileUpdate' : 'QueryUpdate'),
  fields: (t) => ({
    cursor: t.exposeString('cursor', { description: 'Opaque. Passing it as `after` resumes right after this update.' }),
    seq: t.exposeInt('seq', {
      description: '1, 2, 3, ... per resource, assigned atomically in Redis: no gaps, no repeats.',
    }),
    event: t.exposeString('event', {
      description:
        'What happened, e.g. queued, processing_started, extraction_progress, sentence_classification, ' +
        'processing_completed, retrieving, generating, token, done, attempt_failed, cancelled, ' +
        'processing_failed, query_failed. `history_gap` is not stored: a subscription sends it first when ' +
        'updates after its cursor are gone (see `gap`); its seq is the position the stream resumes after.',
    }),
    status: t.expose('status', { type: UpdateStatusEnum }),
    progress: t.exposeFloat('progress', { nullable: true, description: '0 to 100 where known.' }),
    message: t.exposeString('message', { nullable: true }),
    timestamp: t.expose('timestamp', { type: 'DateTime' }),
    data: t.expose('data', { type: 'JSON', nullable: true }),
    gap: t.expose('gap', { type: HistoryGapRef, nullable: true, description: 'Set only on a `history_gap` notice.' }),
  }),
});

const FileUpdateRef = builder.objectRef<FileItem>('FileUpdate').implement({
  interfaces: [ProgressUpdateRef],
  fields: (t) => ({ fileId: t.exposeID('fileId') }),
});

const QueryUpdateRef = builder.objectRef<QueryItem>('QueryUpdate').implement({
  interfaces: [ProgressUpdateRef],
  fields: (t) => ({
    queryId: t.exposeID('queryId'),
    token: t.exposeString('token', { nullable: true, description: 'The new text of a token event.' }),
    text: t.string({
      nullable: true,
      description: 'The whole answer text so far.',
      resolve: ({ text }) => (text instanceof TextLoader ? text.load() : text),
    }),
  }),
});

const ProjectUpdateRef = builder.objectRef<ProjectItem>('ProjectUpdate').implement({
  description: 'One update of a file or query in a project, as seen by `projectProgress`.',
  fields: (t) => ({
    cursor: t.exposeString('cursor', {
      description: 'Opaque. Passing it as `after` to projectProgress resumes right after this update.',
    }),
    update: t.expose('update', { type: ProgressUpdateRef }),
    gap: t.expose('gap', {
      type: HistoryGapRef,
      nullable: true,
      description: 'Set on the first update delivered after a gap: updates between the cursor and this one are gone.',
    }),
  }),
});

/** Errors the stream raises before anything is sent, as the contract's codes. */
async function open<E extends StreamEntry>(options: OpenStreamOptions<E>) {
  try {
    return await openStream(options);
  } catch (error) {
    if (error instanceof CursorAheadError) badInput('after', `after: ${error.message}`);
    throw error;
  }
}

/** Shared by every resource stream rather than made per subscriber. */
const isFinalUpdate = (entry: UpdateEntry) => isTerminal(entry.update.status);
const updateAppendedAt = (entry: UpdateEntry) => entry.update.timestamp;
/** A query's body is its answer, and each token update appends its token. */
const answerBody: BodyOfEntries<UpdateEntry> = { range: (entry) => entry.body, piece: (entry) => entry.update.token ?? '' };

async function subscribeResource(context: Context, kind: ResourceKind, id: string, after: string | null | undefined) {
  const cursor = resumeCursor(context, after);
  const record = await accessibleResource(context, id, kind, kind === 'file' ? 'fileId' : 'queryId');
  const { store, hub, config, rooms } = context.services;
  const ref = refOf(record);
  const stream = await open<UpdateEntry>({
    hub,
    channel: store.resourceChannel(ref),
    read: store.resourceHistory(ref),
    after: cursor,
    replay: config.updates.replayOnConnect,
    isFinal: isFinalUpdate,
    appendedAt: updateAppendedAt,
    body: answerBody,
    queueLimit: config.updates.subscriberQueueLimit,
  });
  const watched: Room[] = [{ kind: 'resource', id: record.id }];
  if (record.projectId !== null) watched.push({ kind: 'project', id: record.projectId });
  return rooms.watching(stream, watched, context.viewer.id);
}

/** The cursor of the item `resourceItem` makes of `event`, without making it. */
const resourceEventCursor = (event: StreamEvent<UpdateEntry>): string =>
  event.type === 'entry'
    ? encodeCursor({ epoch: event.entry.epoch, seq: event.entry.seq })
    : encodeCursor({ epoch: event.gap.epoch ?? NO_EPOCH, seq: event.gap.resumesAfter });

type ItemOf<K extends ResourceKind> = K extends 'file' ? FileItem : QueryItem;

/** The item a resource subscription of `kind` on `id` sends for one event of its stream. */
function resourceItem<K extends ResourceKind>(kind: K, id: string, event: StreamEvent<UpdateEntry>): ItemOf<K> {
  const item = event.type === 'entry' ? fromEntry(event.entry, event.body) : fromGap(kind, id, event.gap, event.latest);
  return item as ItemOf<K>;
}

builder.queryField('recentUpdates', (t) =>
  t.field({
    type: [ProgressUpdateRef],
    description: 'Oldest first; at most `limit` (default 10, at most HISTORY_LIMIT) of the most recent updates.',
    args: {
      kind: t.arg({ type: ResourceKindEnum, required: true }),
      id: t.arg.id({ required: true }),
      limit: t.arg.int(),
    },
    resolve: async (_root, args, context) => {
      const limit = args.limit ?? 10;
      if (!Number.isInteger(limit) || limit < 1) badInput('limit', 'limit must be at least 1');
      const record = await accessibleResource(context, String(args.id), args.kind);
      const { store, config } = context.services;
      const read = await store.resourceHistory(refOf(record))({ last: Math.min(limit, config.updates.historyLimit) });
      return read.entries.map((entry) => fromEntry(entry, entry.body && read.body ? read.body.slice(entry.body) : null));
    },
  }),
);

builder.subscriptionField('fileProgress', (t) =>
  t.field({
    type: FileUpdateRef,
    description:
      'Replays the last REPLAY_ON_CONNECT updates (or every update after `after`), then goes on live; ' +
      'completes after a terminal update. A `history_gap` update comes first when updates after `after` are gone.',
    args: { fileId: t.arg.id({ required: true }), after: t.arg.string() },
    extensions: { [SHARED_RESULTS]: true, [EVENT_CURSOR]: resourceEventCursor },
    subscribe: (_root, args, context) => subscribeResource(context, 'file', String(args.fileId), args.after),
    resolve: (event: StreamEvent<UpdateEntry>, args) => resourceItem('file', String(args.fileId), event),
  }),
);

builder.subscriptionField('queryProgress', (t) =>
  t.field({
    type: QueryUpdateRef,
    description: 'Like fileProgress, for a query: stage updates, then `token` updates, then `done`.',
    args: { queryId: t.arg.id({ required: true }), after: t.arg.string() },
    extensions: { [SHARED_RESULTS]: true, [EVENT_CURSOR]: resourceEventCursor },
    subscribe: (_root, args, context) => subscribeResource(context, 'query', String(args.queryId), args.after),
    resolve: (event: StreamEvent<UpdateEntry>, args) => resourceItem('query', String(args.queryId), event),
  }),
);

builder.subscriptionField('projectProgress', (t) =>
  t.field({
    type: ProjectUpdateRef,
    description:
      'Every update of every file and query started in the project, in the order they were appended; ' +
      'members only. Never completes by itself.',
    args: { projectId: t.arg.id({ required: true }), after: t.arg.string() },
    extensions: { [SHARED_RESULTS]: true, [EVENT_CURSOR]: (item: ProjectItem) => item.cursor },
    subscribe: async (_root, args, context) => {
      const cursor = resumeCursor(context, args.after);
      const projectId = memberProject(context, String(args.projectId), 'projectId');
      const { store, hub, config, rooms } = context.services;
      const stream = withGapOnNext(
        store,
        projectId,
        await open<ProjectEntry>({
          hub,
          channel: store.projectChannel(projectId),
          read: store.projectHistory(projectId),
          after: cursor,
          replay: config.updates.replayOnConnect,
          isFinal: () => false,
          appendedAt: (entry) => entry.item.update.timestamp,
          queueLimit: config.updates.subscriberQueueLimit,
        }),
      );
      return rooms.watching(stream, [{ kind: 'project', id: projectId }], context.viewer.id);
    },
    resolve: (item: ProjectItem) => item,
  }),
);

/** One item per entry, shared by every project subscriber it reaches without a gap (see SHARED_RESULTS). */
const projectItems = new WeakMap<ProjectEntry, ProjectItem>();

function projectItem(store: UpdateStore, projectId: string, entry: ProjectEntry): ProjectItem {
  let item = projectItems.get(entry);
  if (!item) {
    const { kind, id, body } = entry.item;
    const text = body ? new TextLoader(() => store.readBody({ kind, id, projectId }, body)) : null;
    item = { cursor: encodeCursor({ epoch: entry.epoch, seq: entry.seq }), update: fromEntry(entry.item, text), gap: null };
    projectItems.set(entry, item);
  }
  return item;
}

/** A project stream has no update to carry a gap notice, so the notice rides on the next update. */
function withGapOnNext(
  store: UpdateStore,
  projectId: string,
  stream: EventStream<StreamEvent<ProjectEntry>>,
): EventStream<ProjectItem> {
  let gap: HistoryGap | null = null;
  return mapStream(stream, (event) => {
    if (event.type === 'gap') {
      gap = event.gap;
      return undefined;
    }
    const shared = projectItem(store, projectId, event.entry);
    if (!gap) return shared;
    // A new object named field by field: a spread would copy the execution cache that sits on the
    // shared item under symbols, and this subscriber would get another's result without its gap.
    const item: ProjectItem = { cursor: shared.cursor, update: shared.update, gap };
    gap = null;
    return item;
  });
}

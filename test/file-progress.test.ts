import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FileProgressDocument,
  ProjectProgressDocument,
  RecentUpdatesDocument,
  StartFileProcessingDocument,
  StartQueryDocument,
  type FileProgressSubscription,
  type ProjectProgressSubscription,
} from '../src/client/generated.js';
import { makeDocument } from './helpers/documents.js';
import { nth } from './helpers/elements.js';
import { startHerald, type Herald } from './helpers/herald.js';
import { connect } from './helpers/redis.js';
import { collect, waitFor } from './helpers/streams.js';

type FileUpdate = FileProgressSubscription['fileProgress'];
type ProjectUpdate = ProjectProgressSubscription['projectProgress'];

let herald: Herald;
let alice: string;

beforeAll(async () => {
  herald = await startHerald({ CHUNK_CHARS: '200', CLASSIFY_BATCH: '4', REPLAY_ON_CONNECT: '3' });
  alice = await herald.token({ sub: 'alice', projects: ['apollo'] });
});
afterAll(() => herald?.stop());

async function startFile(content: string, projectId?: string, token = alice) {
  const { body } = await herald.http(token, StartFileProcessingDocument, { input: { name: 'notes.md', content, projectId } });
  expect(body.errors).toBeUndefined();
  return body.data!.startFileProcessing;
}

function watchFile(client: Parameters<typeof collect>[0], fileId: string, after?: string) {
  return collect<FileUpdate>(client, FileProgressDocument, { fileId, after }, { field: 'fileProgress' });
}

describe('fileProgress', () => {
  it('streams a document job to completion over graphql-ws and SSE, in order, then completes', async () => {
    const { fileId, cursor } = await startFile(makeDocument(6));
    const [ws, sse] = await Promise.all([
      watchFile(herald.ws(alice), fileId, cursor),
      watchFile(herald.sse(alice), fileId, cursor),
    ]);
    for (const run of [ws, sse]) {
      expect(run.errors).toEqual([]);
      expect(run.completed).toBe(true);
    }
    const updates = ws.items;
    expect(updates.map((u) => u.seq)).toEqual(updates.map((_, i) => i + 1));
    expect(updates.every((u) => u.fileId === fileId)).toBe(true);
    const events = updates.map((u) => u.event);
    expect(events[0]).toBe('queued');
    expect(events[1]).toBe('processing_started');
    expect(events.at(-1)).toBe('processing_completed');
    const extraction = updates.filter((u) => u.event === 'extraction_progress');
    const total = (nth(extraction, 0).data as { total: number }).total;
    expect(total).toBeGreaterThan(1);
    expect(extraction.map((u) => (u.data as { current: number }).current)).toEqual(
      Array.from({ length: total }, (_, i) => i + 1),
    );
    const classified = updates
      .filter((u) => u.event === 'sentence_classification')
      .flatMap((u) => (u.data as { sentences: Array<{ class: string; text: string }> }).sentences);
    expect(new Set(classified.map((s) => s.class))).toEqual(new Set(['question', 'definition', 'claim', 'other']));
    const progress = updates.map((u) => u.progress ?? 0);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
    const done = updates.at(-1)!;
    expect(done.status).toBe('COMPLETED');
    expect(done.progress).toBe(100);
    // Per section: a heading with a number (claim), a definition, a question, a claim and another sentence.
    expect(done.data).toMatchObject({ sentences: 30, classes: { question: 6, definition: 6, claim: 12, other: 6 } });
    expect(classified).toHaveLength(30);
    expect(sse.items).toEqual(updates);
  });

  it('replays the last REPLAY_ON_CONNECT updates of a finished file, then completes', async () => {
    const { fileId, cursor } = await startFile(makeDocument(2));
    const first = await watchFile(herald.ws(alice), fileId, cursor);
    const last = first.items.at(-1)!;
    const replay = await watchFile(herald.ws(alice), fileId);
    expect(replay.completed).toBe(true);
    expect(replay.items.map((u) => u.seq)).toEqual([last.seq - 2, last.seq - 1, last.seq]);
    const resumed = await watchFile(herald.sse(alice), fileId, nth(first.items, 1).cursor);
    expect(resumed.items.map((u) => u.seq)).toEqual(first.items.slice(2).map((u) => u.seq));
    expect(resumed.completed).toBe(true);
  });

  it('recentUpdates returns the most recent updates oldest first, capped', async () => {
    const { fileId, cursor } = await startFile(makeDocument(3));
    const all = (await watchFile(herald.ws(alice), fileId, cursor)).items;
    const recent = async (limit?: number) => {
      const { body } = await herald.http(alice, RecentUpdatesDocument, { kind: 'FILE', id: fileId, limit });
      expect(body.errors).toBeUndefined();
      return body.data!.recentUpdates;
    };
    expect((await recent(2)).map((u) => u.seq)).toEqual([all.length - 1, all.length]);
    const byDefault = await recent();
    expect(byDefault.map((u) => u.seq)).toEqual(all.slice(-10).map((u) => u.seq));
    expect(byDefault.every((u) => u.__typename === 'FileUpdate')).toBe(true);
    expect((await recent(100_000)).map((u) => u.seq)).toEqual(all.map((u) => u.seq));
    expect((await recent(1))[0]).toMatchObject({ event: 'processing_completed', cursor: all.at(-1)!.cursor });
  });
});

describe('projectProgress', () => {
  it('streams every update of every file and query in a project, in append order, resumable', async () => {
    const bob = await herald.token({ sub: 'bob', projects: ['apollo'] });
    const watching = collect<ProjectUpdate>(
      herald.ws(bob),
      ProjectProgressDocument,
      { projectId: 'apollo' },
      {
        field: 'projectProgress',
        until: (items) => items.filter((i) => ['COMPLETED', 'FAILED'].includes(i.update.status)).length === 3,
      },
    );
    await new Promise((r) => setTimeout(r, 100));
    const started = [await startFile(makeDocument(2), 'apollo'), await startFile(makeDocument(3), 'apollo', bob)] as const;
    const [fileA, fileB] = [started[0].fileId, started[1].fileId];
    const outside = (await startFile(makeDocument(1))).fileId;
    const files = await Promise.all(started.map((s) => watchFile(herald.ws(alice), s.fileId, s.cursor)));
    const { body } = await herald.http(bob, StartQueryDocument, {
      input: { question: 'Why does topic 2 matter?', fileIds: [fileA, fileB], projectId: 'apollo' },
    });
    const queryId = body.data!.startQuery.queryId;
    const seen = (await watching).items;

    const resourceOf = (p: ProjectUpdate) =>
      'fileId' in p.update ? p.update.fileId : 'queryId' in p.update ? p.update.queryId : '';
    expect(seen.some((p) => resourceOf(p) === outside)).toBe(false);
    expect(new Set(seen.map(resourceOf))).toEqual(new Set([fileA, fileB, queryId]));
    // Per resource, the project stream carries exactly that resource's updates, in seq order.
    for (const [index, id] of [fileA, fileB].entries()) {
      expect(seen.filter((p) => resourceOf(p) === id).map((p) => p.update.seq)).toEqual(
        nth(files, index).items.map((u) => u.seq),
      );
    }
    const cursors = seen.map((p) => p.cursor);
    expect(new Set(cursors).size).toBe(cursors.length);

    const from = Math.floor(seen.length / 2);
    const resumed = await collect<ProjectUpdate>(
      herald.sse(bob),
      ProjectProgressDocument,
      { projectId: 'apollo', after: nth(seen, from).cursor },
      {
        field: 'projectProgress',
        until: (items) => items.length === seen.length - from - 1,
      },
    );
    expect(resumed.items.map((p) => p.cursor)).toEqual(cursors.slice(from + 1));
    expect(resumed.items.every((p) => p.gap === null)).toBe(true);
  });

  it('holds one Redis subscription per channel per process, however many clients watch it', async () => {
    const redis = connect();
    const channel = `${herald.config.keyPrefix}updates:{project:apollo}`;
    const subscribers = async () => Number(((await redis.pubsub('NUMSUB', channel)) as [string, number])[1]);
    const clients = Array.from({ length: 5 }, () => herald.ws(alice));
    const stops = clients.map((client) =>
      client.subscribe(
        { query: 'subscription { projectProgress(projectId: "apollo") { cursor } }' },
        { next() {}, error() {}, complete() {} },
      ),
    );
    await waitFor(async () => (await subscribers()) === 1);
    await new Promise((r) => setTimeout(r, 100));
    expect(await subscribers()).toBe(1);
    for (const stop of stops) stop();
    await waitFor(async () => (await subscribers()) === 0);
    redis.disconnect();
  });

  it('is for the project members only', async () => {
    const outsider = await herald.token({ sub: 'mallory', projects: ['other'] });
    const run = await collect<ProjectUpdate>(
      herald.ws(outsider),
      ProjectProgressDocument,
      { projectId: 'apollo' },
      { field: 'projectProgress' },
    );
    expect(run.items).toEqual([]);
    expect(JSON.stringify(run.errors)).toContain('FORBIDDEN');
  });
});

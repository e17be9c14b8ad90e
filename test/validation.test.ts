import { print } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FileProgressDocument,
  JobDocument,
  MeDocument,
  RecentUpdatesDocument,
  StartFileProcessingDocument,
  StartQueryDocument,
  type FileProgressSubscription,
} from '../src/client/generated.js';
import { startHerald, type GraphQLBody, type Herald } from './helpers/herald.js';
import { collect, errorCodes as codes } from './helpers/streams.js';

type FileUpdate = FileProgressSubscription['fileProgress'];

const MAX_CONTENT_BYTES = 1_000;
const MAX_UPLOAD_BYTES = 2_000;
const MAX_QUESTION_LENGTH = 50;
const HISTORY_LIMIT = 8;

/** About 900 bytes of markdown: with CHUNK_CHARS=100 it makes well over HISTORY_LIMIT updates. */
const LONG_DOCUMENT = Array.from(
  { length: 9 },
  (_, i) => `## Part ${i + 1}\n\nHerald streams updates. What is part ${i + 1}? It has ${i + 2} steps.\n`,
).join('\n');
const SHORT_DOCUMENT = '# Notes\n\nHerald is a progress server. What does it do? It streams 3 kinds of updates.\n';
const MARKDOWN_UPLOAD =
  '# Uploaded\n\nAn upload is a file sent as a multipart request. Why send a file? ' +
  'It saves 2 steps for the user.\n\n- one item\n- another item\n';

let herald: Herald;
let alice: string;
/** A file of alice's that has completed, with every update it made. */
let done: { fileId: string; updates: FileUpdate[] };

beforeAll(async () => {
  herald = await startHerald({
    MAX_CONTENT_BYTES: String(MAX_CONTENT_BYTES),
    MAX_UPLOAD_BYTES: String(MAX_UPLOAD_BYTES),
    MAX_QUESTION_LENGTH: String(MAX_QUESTION_LENGTH),
    HISTORY_LIMIT: String(HISTORY_LIMIT),
    REPLAY_ON_CONNECT: '3',
    CHUNK_CHARS: '100',
    CLASSIFY_BATCH: '2',
  });
  alice = await herald.token('alice');
  const { fileId, cursor } = await startFile({ name: 'long.md', content: LONG_DOCUMENT });
  const run = await watchFile(fileId, cursor);
  expect(run.completed).toBe(true);
  done = { fileId, updates: run.items };
});
afterAll(() => herald?.stop());

function messages(errors: unknown): string {
  if (Array.isArray(errors)) return errors.map(messages).join(' | ');
  if (errors && typeof errors === 'object') {
    const value = errors as { message?: unknown; errors?: unknown };
    if (value.errors) return messages(value.errors);
    if (typeof value.message === 'string') return value.message;
  }
  return '';
}

/** The request was refused with BAD_USER_INPUT only, nothing was done, and the message says why. */
function expectBadInput(body: GraphQLBody<unknown>, message: RegExp) {
  // No data at all, or (for a nullable field such as `job`) only nulls.
  expect(Object.values(body.data ?? {}).filter((value) => value !== null)).toEqual([]);
  expect(codes(body)).toEqual(['BAD_USER_INPUT']);
  expect(messages(body)).toMatch(message);
}

async function startFile(input: { name: string; content?: string | null; projectId?: string }) {
  const { body } = await herald.http(alice, StartFileProcessingDocument, { input });
  expect(body.errors).toBeUndefined();
  return body.data!.startFileProcessing;
}

function watchFile(fileId: string, after?: string) {
  return collect<FileUpdate>(
    herald.ws(alice),
    FileProgressDocument,
    { fileId, after },
    { field: 'fileProgress', timeoutMs: 15_000 },
  );
}

/** startFileProcessing as a GraphQL multipart request (operations, map, then the file part). */
async function upload(file: Blob, filename: string, input: Record<string, unknown> = {}) {
  const form = new FormData();
  form.set(
    'operations',
    JSON.stringify({ query: print(StartFileProcessingDocument), variables: { input: { name: filename, file: null, ...input } } }),
  );
  form.set('map', JSON.stringify({ 0: ['variables.input.file'] }));
  form.set('0', file, filename);
  const response = await fetch(`${herald.url}/graphql`, {
    method: 'POST',
    headers: { authorization: `Bearer ${alice}`, accept: 'application/graphql-response+json, application/json' },
    body: form,
  });
  const text = await response.text();
  let body: GraphQLBody<{ startFileProcessing: { fileId: string; cursor: string } }>;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`not JSON (${response.status}): ${text.slice(0, 200)}`);
  }
  return { status: response.status, body };
}

function encodeCursor(epoch: string, seq: number): string {
  return Buffer.from(`${epoch}:${seq}`).toString('base64url');
}

function decodeCursor(cursor: string): { epoch: string; seq: number } {
  const [epoch = '', seq] = Buffer.from(cursor, 'base64url').toString().split(':');
  return { epoch, seq: Number(seq) };
}

describe('startFileProcessing input', () => {
  it('refuses content and file together', async () => {
    const result = await upload(new Blob([SHORT_DOCUMENT], { type: 'text/markdown' }), 'both.md', { content: SHORT_DOCUMENT });
    expectBadInput(result.body, /exactly one of content and file/);
  });

  it('refuses neither content nor file', async () => {
    expectBadInput(
      (await herald.http(alice, StartFileProcessingDocument, { input: { name: 'x.md' } })).body,
      /exactly one of content and file/,
    );
    expectBadInput(
      (await herald.http(alice, StartFileProcessingDocument, { input: { name: 'x.md', content: null } })).body,
      /exactly one of content and file/,
    );
  });

  it('refuses content over MAX_CONTENT_BYTES, counted in bytes, and takes content right at it', async () => {
    const over = await herald.http(alice, StartFileProcessingDocument, {
      input: { name: 'big.md', content: 'a'.repeat(MAX_CONTENT_BYTES + 1) },
    });
    expectBadInput(over.body, new RegExp(`${MAX_CONTENT_BYTES + 1} bytes; at most ${MAX_CONTENT_BYTES}`));
    // 600 characters, but 1200 bytes of UTF-8.
    const multibyte = await herald.http(alice, StartFileProcessingDocument, {
      input: { name: 'é.md', content: 'é'.repeat(600) },
    });
    expectBadInput(multibyte.body, /1200 bytes/);
    const atLimit = await herald.http(alice, StartFileProcessingDocument, {
      input: { name: 'limit.md', content: `${'Herald works. '.repeat(71)}`.padEnd(MAX_CONTENT_BYTES, 'x') },
    });
    expect(atLimit.body.errors).toBeUndefined();
  });

  it('refuses empty and whitespace-only content', async () => {
    for (const content of ['', '   ', '\n\t \r\n']) {
      expectBadInput(
        (await herald.http(alice, StartFileProcessingDocument, { input: { name: 'empty.md', content } })).body,
        /content is empty/,
      );
    }
  });

  it('refuses an empty or blank name and one over MAX_NAME_LENGTH', async () => {
    const max = herald.config.limits.maxNameLength;
    for (const name of ['', '   ', 'n'.repeat(max + 1)]) {
      const { body } = await herald.http(alice, StartFileProcessingDocument, { input: { name, content: SHORT_DOCUMENT } });
      expectBadInput(body, new RegExp(`name must be 1 to ${max} characters`));
    }
    const { body } = await herald.http(alice, StartFileProcessingDocument, {
      input: { name: 'n'.repeat(max), content: SHORT_DOCUMENT },
    });
    expect(body.errors).toBeUndefined();
  });

  it('refuses a malformed projectId', async () => {
    const { body } = await herald.http(alice, StartFileProcessingDocument, {
      input: { name: 'p.md', content: SHORT_DOCUMENT, projectId: 'no spaces/or slashes' },
    });
    expectBadInput(body, /projectId must be 1 to 128/);
  });

  it('refuses a file sent as a plain JSON value instead of a multipart part', async () => {
    const { body } = await herald.http(alice, StartFileProcessingDocument, {
      input: { name: 'x.md', file: 'SGVsbG8=' } as never,
    });
    expect(codes(body)).toEqual(['BAD_USER_INPUT']);
    expect(messages(body)).toMatch(/multipart/);
  });
});

describe('uploads', () => {
  it('refuses a binary, non-UTF-8 file', async () => {
    const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0xff, 0xfe]);
    for (const type of ['text/plain', 'text/markdown']) {
      const { body } = await upload(new Blob([png], { type }), 'image.txt');
      expectBadInput(body, /not UTF-8/);
    }
  });

  it('refuses an unsupported type', async () => {
    for (const type of ['image/png', 'application/octet-stream']) {
      const { body } = await upload(new Blob(['plain words. More words.'], { type }), 'file.bin');
      expectBadInput(body, new RegExp(`type ${type.replace('/', '\\/')} are not supported`));
    }
    // PDF is supported: text that claims to be one is refused as a PDF (test/pdf.test.ts has the rest).
    const { body } = await upload(new Blob(['plain words. More words.'], { type: 'application/pdf' }), 'file.pdf');
    expectBadInput(body, /the file is not a readable PDF/);
  });

  it('refuses an empty upload', async () => {
    const { body } = await upload(new Blob([' \n '], { type: 'text/plain' }), 'blank.txt');
    expectBadInput(body, /empty/);
  });

  it('refuses an upload over MAX_UPLOAD_BYTES', async () => {
    const { body } = await upload(new Blob(['x'.repeat(MAX_UPLOAD_BYTES + 1)], { type: 'text/plain' }), 'big.txt');
    expectBadInput(body, new RegExp(`${MAX_UPLOAD_BYTES + 1} bytes; at most ${MAX_UPLOAD_BYTES}`));
  });

  it('processes a valid markdown upload end to end, watched over graphql-ws', async () => {
    const { status, body } = await upload(new Blob([MARKDOWN_UPLOAD], { type: 'text/markdown' }), 'upload.md');
    expect(status).toBe(200);
    expect(body.errors).toBeUndefined();
    const { fileId, cursor } = body.data!.startFileProcessing;
    const run = await watchFile(fileId, cursor);
    expect(run.errors).toEqual([]);
    expect(run.completed).toBe(true);
    expect(run.items.map((u) => u.seq)).toEqual(run.items.map((_, i) => i + 1));
    expect(run.items[1]).toMatchObject({
      event: 'processing_started',
      data: { name: 'upload.md', bytes: Buffer.byteLength(MARKDOWN_UPLOAD) },
    });
    const last = run.items.at(-1)!;
    expect(last).toMatchObject({ event: 'processing_completed', status: 'COMPLETED', progress: 100 });
    expect((last.data as { sentences: number }).sentences).toBeGreaterThanOrEqual(3);
    const classified = run.items
      .filter((u) => u.event === 'sentence_classification')
      .flatMap((u) => (u.data as { sentences: Array<{ text: string }> }).sentences.map((s) => s.text));
    expect(classified.join(' ')).toContain('Why send a file?');
  });
});

describe('startQuery input', () => {
  async function startQuery(input: Record<string, unknown>) {
    return (await herald.http(alice, StartQueryDocument, { input: input as never })).body;
  }

  it('refuses an empty or blank question', async () => {
    expectBadInput(await startQuery({ question: '' }), new RegExp(`question must be 1 to ${MAX_QUESTION_LENGTH}`));
    expectBadInput(await startQuery({ question: '  \n ' }), /question must be/);
  });

  it('refuses a question over MAX_QUESTION_LENGTH and takes one right at it', async () => {
    expectBadInput(await startQuery({ question: 'q'.repeat(MAX_QUESTION_LENGTH + 1) }), /question must be/);
    const ok = await startQuery({ question: `What ${'w'.repeat(MAX_QUESTION_LENGTH - 6)}?`, fileIds: [done.fileId] });
    expect(ok.errors).toBeUndefined();
  });

  it('refuses fileIds: []', async () => {
    expectBadInput(await startQuery({ question: 'What is Herald?', fileIds: [] }), /fileIds must list 1 to/);
  });

  it('refuses a malformed file id, and a malformed projectId', async () => {
    for (const id of ['', 'has space', '../../etc/passwd', '{tag}', 'x'.repeat(129)]) {
      expectBadInput(await startQuery({ question: 'What is Herald?', fileIds: [id] }), /input\.fileIds must be 1 to 128/);
    }
    expectBadInput(await startQuery({ question: 'What is Herald?', projectId: 'a b' }), /projectId must be/);
  });
});

describe('ids and cursors', () => {
  it('refuses fileProgress with a malformed id, over graphql-ws and SSE', async () => {
    for (const client of [herald.ws(alice), herald.sse(alice)]) {
      const run = await collect(client, FileProgressDocument, { fileId: 'not an id!' }, { field: 'fileProgress' });
      expect(run.items).toEqual([]);
      expect(codes(run.errors)).toEqual(['BAD_USER_INPUT']);
      expect(messages(run.errors)).toMatch(/fileId must be 1 to 128/);
    }
    expectBadInput((await herald.http(alice, JobDocument, { id: 'a/b' })).body, /id must be/);
    expectBadInput((await herald.http(alice, RecentUpdatesDocument, { kind: 'FILE', id: 'x'.repeat(200) })).body, /id must be/);
  });

  it('refuses an `after` that is not a cursor', async () => {
    const notCursors = [
      'not-a-cursor!',
      '',
      Buffer.from('hello').toString('base64url'),
      Buffer.from('epoch:seq').toString('base64url'),
      Buffer.from('abc:1:2').toString('base64url'),
      Buffer.from('abc:-1').toString('base64url'),
      'A'.repeat(100),
    ];
    const client = herald.ws(alice);
    for (const after of notCursors) {
      const run = await collect(client, FileProgressDocument, { fileId: done.fileId, after }, { field: 'fileProgress' });
      expect(run.items).toEqual([]);
      expect(codes(run.errors)).toEqual(['BAD_USER_INPUT']);
      expect(messages(run.errors)).toMatch(/after is not a cursor/);
    }
  });

  it('refuses a cursor whose seq is beyond the last seq of the stream, and takes the last one', async () => {
    const last = done.updates.at(-1)!;
    const { epoch, seq } = decodeCursor(last.cursor);
    expect(seq).toBe(last.seq);
    for (const ahead of [seq + 1, seq + 1_000]) {
      const run = await collect(
        herald.ws(alice),
        FileProgressDocument,
        { fileId: done.fileId, after: encodeCursor(epoch, ahead) },
        {
          field: 'fileProgress',
        },
      );
      expect(run.items).toEqual([]);
      expect(codes(run.errors)).toEqual(['BAD_USER_INPUT']);
      expect(messages(run.errors)).toMatch(new RegExp(`after: cursor is at ${ahead} but the stream is at ${seq}`));
    }
    // One step back is a real position: it resumes with exactly the last update, then completes.
    const resumed = await collect<FileUpdate>(
      herald.ws(alice),
      FileProgressDocument,
      { fileId: done.fileId, after: encodeCursor(epoch, seq - 1) },
      {
        field: 'fileProgress',
      },
    );
    expect(resumed.errors).toEqual([]);
    expect(resumed.completed).toBe(true);
    expect(resumed.items.map((u) => u.seq)).toEqual([seq]);
  });

  it('refuses a recentUpdates limit of 0 or below', async () => {
    for (const limit of [0, -1, -1_000]) {
      const { body } = await herald.http(alice, RecentUpdatesDocument, { kind: 'FILE', id: done.fileId, limit });
      expectBadInput(body, /limit must be at least 1/);
    }
  });

  it('caps a huge recentUpdates limit at HISTORY_LIMIT, oldest first', async () => {
    expect(done.updates.length).toBeGreaterThan(HISTORY_LIMIT);
    const { body } = await herald.http(alice, RecentUpdatesDocument, { kind: 'FILE', id: done.fileId, limit: 2_000_000_000 });
    expect(body.errors).toBeUndefined();
    const seqs = body.data!.recentUpdates.map((u) => u.seq);
    const lastSeq = done.updates.at(-1)!.seq;
    expect(seqs).toEqual(Array.from({ length: HISTORY_LIMIT }, (_, i) => lastSeq - HISTORY_LIMIT + 1 + i));
    const few = await herald.http(alice, RecentUpdatesDocument, { kind: 'FILE', id: done.fileId, limit: 3 });
    expect(few.body.data!.recentUpdates.map((u) => u.seq)).toEqual([lastSeq - 2, lastSeq - 1, lastSeq]);
  });

  it('refuses a limit that is not a 32-bit Int', async () => {
    const { body } = await herald.http(alice, RecentUpdatesDocument, { kind: 'FILE', id: done.fileId, limit: 1e12 });
    expect(codes(body)).toEqual(['BAD_USER_INPUT']);
  });
});

describe('document limits', () => {
  /** A document `depth` fields deep: __type, fields, type, then ofType down to a leaf. */
  function deepQuery(depth: number): string {
    return `{ __type(name: "Query") { fields { type { ${'ofType { '.repeat(depth - 4)}name ${'} '.repeat(depth - 4)}} } } }`;
  }
  function aliasQuery(aliases: number): string {
    return `{ ${Array.from({ length: aliases }, (_, i) => `a${i}: me { id }`).join(' ')} }`;
  }
  function tokenQuery(tokens: number): string {
    return `{ me { ${'id '.repeat(tokens)}} }`;
  }

  function cases() {
    const { maxQueryDepth, maxQueryAliases, maxQueryTokens } = herald.config.limits;
    return [
      { what: 'depth', ok: deepQuery(maxQueryDepth), bad: deepQuery(maxQueryDepth + 1), message: /depth limit/i },
      { what: 'aliases', ok: aliasQuery(maxQueryAliases), bad: aliasQuery(maxQueryAliases + 1), message: /aliases limit/i },
      { what: 'tokens', ok: tokenQuery(10), bad: tokenQuery(maxQueryTokens + 1), message: /token limit/i },
    ];
  }

  it('rejects documents over the depth, alias and token limits over HTTP with BAD_USER_INPUT', async () => {
    for (const { what, ok, bad, message } of cases()) {
      const rejected = await herald.http(alice, bad);
      expect(rejected.status, what).toBeGreaterThanOrEqual(400);
      expect(rejected.status, what).toBeLessThan(500);
      expectBadInput(rejected.body, message);
      const accepted = await herald.http(alice, ok);
      expect(accepted.body.errors, what).toBeUndefined();
    }
  });

  it('rejects them over graphql-ws with BAD_USER_INPUT, and the socket stays open and usable', async () => {
    // Not lazy: a lazy client would close its socket between operations, hiding a server-side close.
    const client = herald.ws(alice, { lazy: false });
    let connected = 0;
    let closed = 0;
    client.on('connected', () => (connected += 1));
    client.on('closed', () => (closed += 1));
    const first = await collect(client, MeDocument, {}, { field: 'me' });
    expect(first.items).toEqual([{ id: 'alice', roles: [], projects: [] }]);
    for (const { what, ok, bad, message } of cases()) {
      const rejected = await collect(client, bad, {}, { field: 'me' });
      expect(rejected.items, what).toEqual([]);
      expect(codes(rejected.errors), what).toEqual(['BAD_USER_INPUT']);
      expect(messages(rejected.errors), what).toMatch(message);
      const accepted = await collect(client, ok, {}, { field: '__type' });
      expect(accepted.errors, what).toEqual([]);
      const me = await collect(client, MeDocument, {}, { field: 'me' });
      expect(me.items, what).toEqual([{ id: 'alice', roles: [], projects: [] }]);
    }
    // A syntax error and an unknown field do not cost the connection either.
    const syntax = await collect(client, '{ me { id ', {}, { field: 'me' });
    expect(codes(syntax.errors)).toEqual(['BAD_USER_INPUT']);
    const unknown = await collect(client, '{ me { password } }', {}, { field: 'me' });
    expect(codes(unknown.errors)).toEqual(['BAD_USER_INPUT']);
    const after = await collect(client, MeDocument, {}, { field: 'me' });
    expect(after.items).toHaveLength(1);
    expect(connected).toBe(1);
    expect(closed).toBe(0);
  });
});

describe('request size', () => {
  it('answers 413 to a body larger than the limit', async () => {
    const limit = Math.max(MAX_UPLOAD_BYTES, MAX_CONTENT_BYTES) + 64 * 1024;
    const body = JSON.stringify({ query: '{ me { id } }', variables: { pad: 'x'.repeat(limit) } });
    const response = await fetch(`${herald.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${alice}` },
      body,
    });
    expect(response.status).toBe(413);
    expect(codes(await response.json())).toEqual(['BAD_USER_INPUT']);
  });

  it('answers 413 to a chunked body (no Content-Length) larger than the limit', async () => {
    const limit = Math.max(MAX_UPLOAD_BYTES, MAX_CONTENT_BYTES) + 64 * 1024;
    const payload = new TextEncoder().encode(
      JSON.stringify({ query: '{ me { id } }', variables: { pad: 'x'.repeat(limit * 2) } }),
    );
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let offset = 0; offset < payload.length; offset += 16 * 1024)
          controller.enqueue(payload.subarray(offset, offset + 16 * 1024));
        controller.close();
      },
    });
    const response = await fetch(`${herald.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${alice}` },
      body: stream,
      duplex: 'half',
    });
    expect(response.status).toBe(413);
    expect(codes(await response.json())).toEqual(['BAD_USER_INPUT']);
  });

  it('refuses a body that is not a GraphQL request with 400 BAD_USER_INPUT', async () => {
    for (const body of ['{"query": ', '{}', '{"query": 42}', '[{"query": "{ me { id } }"}]']) {
      const response = await fetch(`${herald.url}/graphql`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/graphql-response+json',
          authorization: `Bearer ${alice}`,
        },
        body,
      });
      expect(response.status, body).toBe(400);
      expect(codes(await response.json()), body).toEqual(['BAD_USER_INPUT']);
    }
  });

  it('still takes an ordinary request afterwards', async () => {
    const { status, body } = await herald.http(alice, MeDocument);
    expect(status).toBe(200);
    expect(body.data!.me.id).toBe('alice');
  });
});

describe('after all that', () => {
  it('is healthy and still completes a file job', async () => {
    expect((await fetch(`${herald.url}/healthz`)).status).toBe(200);
    const { fileId, cursor } = await startFile({ name: 'after.md', content: SHORT_DOCUMENT });
    const run = await watchFile(fileId, cursor);
    expect(run.errors).toEqual([]);
    expect(run.completed).toBe(true);
    expect(run.items.at(-1)).toMatchObject({ event: 'processing_completed', status: 'COMPLETED' });
    const job = await herald.http(alice, JobDocument, { id: fileId });
    expect(job.body.data!.job).toMatchObject({ state: 'COMPLETED', attemptsMade: 1 });
  });
});

import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MeDocument } from '../src/client/generated.js';
import { clientsFor, startHerald, type Herald } from './helpers/herald.js';
import { startCluster, type Cluster } from './helpers/processes.js';
import { errorCodes } from './helpers/streams.js';

const MiB = 1024 * 1024;

/** What a node:http client saw of one POST: the answer it read, whether its whole body went out, and any error. */
interface Outcome {
  status?: number;
  body?: unknown;
  sentAll: boolean;
  sentBytes: number;
  error?: string;
}

/**
 * POSTs a startFileProcessing mutation whose `content` is `contentBytes` long, as a real client
 * does: writing as fast as the socket takes it, and reading the answer whenever it comes. With
 * `chunked` there is no Content-Length; `stallAfterPrefix` sends the start of the body and then nothing.
 */
function postContent(
  url: string,
  token: string,
  contentBytes: number,
  options: { chunked: boolean; stallAfterPrefix?: boolean },
) {
  const prefix = Buffer.from(
    '{"query":"mutation($input: StartFileProcessingInput!) { startFileProcessing(input: $input) { fileId } }",' +
      '"variables":{"input":{"name":"big.md","content":"',
  );
  const suffix = Buffer.from('"}}}');
  const filler = Buffer.alloc(64 * 1024, 'x');
  const length = prefix.length + contentBytes + suffix.length;
  return new Promise<Outcome>((resolve) => {
    const outcome: Outcome = { sentAll: false, sentBytes: 0 };
    let answered = false;
    let closed = false;
    const settle = () => answered && closed && resolve(outcome);
    const req = request(`${url}/graphql`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${token}`,
        ...(options.chunked ? {} : { 'content-length': String(length) }),
      },
    });
    req.on('response', (res) => {
      outcome.status = res.statusCode;
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        outcome.body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        answered = true;
        if (options.stallAfterPrefix) req.destroy();
        settle();
      });
    });
    req.on('finish', () => (outcome.sentAll = true));
    req.on('error', (error: NodeJS.ErrnoException) => {
      outcome.error = error.code ?? error.message;
      answered = true;
    });
    req.on('close', () => {
      closed = true;
      settle();
    });
    req.write(prefix);
    outcome.sentBytes = prefix.length;
    if (options.stallAfterPrefix) return;
    const pump = () => {
      while (outcome.sentBytes < prefix.length + contentBytes) {
        if (req.destroyed) return;
        const chunk = filler.subarray(0, Math.min(filler.length, prefix.length + contentBytes - outcome.sentBytes));
        outcome.sentBytes += chunk.length;
        if (!req.write(chunk)) return void req.once('drain', pump);
      }
      req.end(suffix);
    };
    pump();
  });
}

/**
 * The status of a `me` query on a connection of its own. (A pooled connection can be closed as
 * idle by the server just as a starved client reuses it: a client-side race this test is not about.)
 */
function queryMe(url: string, token: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/graphql`, {
      method: 'POST',
      agent: false,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    });
    req.on('response', (res) => res.resume().on('end', () => resolve(res.statusCode ?? 0)));
    req.on('error', reject);
    req.end(JSON.stringify({ query: '{ me { id } }' }));
  });
}

/** A process that keeps one core busy until killed, as other work on a loaded machine does. */
function busyCore(): ChildProcess {
  return spawn(process.execPath, ['-e', 'const end = Date.now() + 120_000; while (Date.now() < end);'], { stdio: 'ignore' });
}

function expectRefusedWith413(outcome: Outcome) {
  expect(outcome.status).toBe(413);
  expect(errorCodes(outcome.body)).toEqual(['BAD_USER_INPUT']);
}

describe('a 50 MB body to a busy API process', () => {
  let cluster: Cluster<1, 0>;
  beforeAll(async () => {
    cluster = await startCluster({}, { apis: 1, workers: 0 });
  }, 60_000);
  afterAll(() => cluster?.stop());

  it('is answered 413 with a GraphQL error that every client reads, by Content-Length or as it streams', async () => {
    const api = clientsFor(cluster.apiUrls[0]);
    const token = await api.token('alice');
    const busy = [busyCore(), busyCore()];
    try {
      const uploads = Promise.all(
        [false, false, true, true].map((chunked) => postContent(api.url, token, 50 * MiB, { chunked })),
      );
      // Ordinary requests keep arriving meanwhile, and are served.
      const ordinary = Promise.allSettled(
        Array.from({ length: 3 }, async () => {
          const statuses: number[] = [];
          for (let i = 0; i < 10; i += 1) statuses.push(await queryMe(api.url, token));
          return statuses;
        }),
      );
      const outcomes = await uploads;
      for (const outcome of outcomes) {
        expect(outcome.error).toBeUndefined();
        expect(outcome.sentAll).toBe(true);
        expectRefusedWith413(outcome);
      }
      expect((await ordinary).flatMap((lane) => (lane.status === 'fulfilled' ? lane.value : [-1]))).toEqual(Array(30).fill(200));
    } finally {
      for (const child of busy) child.kill();
    }
    const after = await api.http(token, MeDocument);
    expect(after.body.data?.me.id).toBe('alice');
  }, 120_000);
});

describe('draining a refused body is bounded', () => {
  let herald: Herald;
  let token: string;
  beforeAll(async () => {
    herald = await startHerald(
      {
        MAX_CONTENT_BYTES: '1000',
        MAX_UPLOAD_BYTES: '1000',
        REFUSED_BODY_DRAIN_BYTES: String(MiB),
        REFUSED_BODY_DRAIN_MS: '300',
      },
      { workers: false },
    );
    token = await herald.token('alice');
  });
  afterAll(() => herald?.stop());

  it('in time: a client that announces a large body and stops sending gets the 413, and the connection closes', async () => {
    const outcome = await postContent(herald.url, token, 50 * MiB, { chunked: false, stallAfterPrefix: true });
    expectRefusedWith413(outcome);
    expect(outcome.sentAll).toBe(false);
  });

  it('in bytes: a client that streams on and on is cut off after about REFUSED_BODY_DRAIN_BYTES', async () => {
    const outcome = await postContent(herald.url, token, 200 * MiB, { chunked: true });
    expect(outcome.sentAll).toBe(false);
    expect(outcome.error).toMatch(/^(EPIPE|ECONNRESET)$/);
    // The server stopped reading long before the end; the kernel's buffers hold a few MB at most.
    expect(outcome.sentBytes).toBeLessThan(50 * MiB);
    const after = await herald.http(token, MeDocument);
    expect(after.status).toBe(200);
  });
});

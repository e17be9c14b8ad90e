import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect as connectHttp2, type ClientHttp2Session } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { print } from 'graphql';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { FileProgressDocument, StartFileProcessingDocument, type FileProgressSubscription } from '../src/client/generated.js';
import { makeDocument } from './helpers/documents.js';
import { startHerald, wsClient, type Herald } from './helpers/herald.js';
import { startNginx, type Nginx } from './helpers/nginx.js';
import { connect } from './helpers/redis.js';
import { freePort, startRedisServer, type RedisServer } from './helpers/redis-server.js';
import { collect } from './helpers/streams.js';

type FileUpdate = FileProgressSubscription['fileProgress'];

let certs: string;
let redis: RedisServer;
let tlsPort: number;
let herald: Herald;
let nginx: Nginx;
let ca: string;

beforeAll(async () => {
  certs = mkdtempSync(join(tmpdir(), 'herald-certs-'));
  execFileSync('bash', [new URL('../scripts/make-certificates.sh', import.meta.url).pathname, certs]);
  ca = readFileSync(join(certs, 'ca.crt'), 'utf8');
  tlsPort = await freePort();
  // The plain port stays for the test's own look at who is connected; Herald gets the TLS port only.
  redis = await startRedisServer({
    extraArgs: [
      ...['--tls-port', String(tlsPort), '--tls-ca-cert-file', join(certs, 'ca.crt')],
      ...['--tls-cert-file', join(certs, 'server.crt'), '--tls-key-file', join(certs, 'server.key')],
    ],
  });
  herald = await startHerald({
    REDIS_URL: `rediss://127.0.0.1:${tlsPort}`,
    REDIS_TLS_CA_FILE: join(certs, 'ca.crt'),
    REDIS_TLS_CERT_FILE: join(certs, 'client.crt'),
    REDIS_TLS_KEY_FILE: join(certs, 'client.key'),
    CHUNK_CHARS: '150',
  });
  nginx = await startNginx([Number(new URL(herald.url).port)], {
    tls: { certFile: join(certs, 'server.crt'), keyFile: join(certs, 'server.key') },
  });
}, 60_000);

afterAll(async () => {
  await nginx?.stop();
  await herald?.stop();
  await redis?.stop();
  if (certs) rmSync(certs, { recursive: true, force: true });
});

/** One HTTP/2 request's status, headers and whole body. */
function request(session: ClientHttp2Session, headers: Record<string, string>, body?: string) {
  return new Promise<{ status: number; contentType: string; body: string }>((resolve, reject) => {
    const stream = session.request(headers);
    let status = 0;
    let contentType = '';
    let text = '';
    stream.on('response', (response) => {
      status = Number(response[':status']);
      contentType = String(response['content-type']);
    });
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => (text += chunk));
    stream.on('end', () => resolve({ status, contentType, body: text }));
    stream.on('error', reject);
    stream.end(body);
  });
}

it('carries a job over HTTPS, WSS and SSE on HTTP/2 through nginx-tls.conf, with Herald on a TLS-only Redis', async () => {
  const token = await herald.token('tess');
  const session = connectHttp2(nginx.url, { ca });
  try {
    const started = await request(
      session,
      { ':method': 'POST', ':path': '/graphql', 'content-type': 'application/json', authorization: `Bearer ${token}` },
      JSON.stringify({
        query: print(StartFileProcessingDocument),
        variables: { input: { name: 'tls.md', content: makeDocument(20) } },
      }),
    );
    expect(started.status).toBe(200);
    const { fileId, cursor } = (JSON.parse(started.body) as { data: { startFileProcessing: { fileId: string; cursor: string } } })
      .data.startFileProcessing;
    const variables = { fileId, after: cursor };

    const wss = wsClient(`${nginx.url.replace(/^https/, 'wss')}/graphql`, token, { socket: { ca } });
    const query = encodeURIComponent(print(FileProgressDocument));
    const [overWss, overSse] = await Promise.all([
      collect<FileUpdate>(wss, FileProgressDocument, variables, { field: 'fileProgress' }),
      request(session, {
        ':method': 'GET',
        ':path': `/graphql?query=${query}&variables=${encodeURIComponent(JSON.stringify(variables))}`,
        accept: 'text/event-stream',
        authorization: `Bearer ${token}`,
      }),
    ]);
    await wss.dispose();

    expect(overWss.errors).toEqual([]);
    expect(overWss.completed).toBe(true);
    expect(overWss.items.map((u) => u.seq)).toEqual(overWss.items.map((_, i) => i + 1));
    expect(overWss.items.at(-1)!.event).toBe('processing_completed');

    expect(overSse.status).toBe(200);
    expect(overSse.contentType).toMatch(/^text\/event-stream/);
    const sseItems = overSse.body
      .split('\n\n')
      .filter((frame) => frame.startsWith('event: next') || frame.includes('\nevent: next'))
      .map((frame) => JSON.parse(/^data: (.*)$/m.exec(frame)![1]!) as { data: { fileProgress: FileUpdate } })
      .map((result) => result.data.fileProgress);
    expect(sseItems).toEqual(overWss.items);
  } finally {
    session.close();
  }

  // Plain HTTP at the edge is only a redirect to HTTPS.
  const plain = await fetch(`${nginx.plainUrl}/graphql`, { redirect: 'manual' });
  expect(plain.status).toBe(308);
  expect(plain.headers.get('location')).toBe(`${nginx.url}/graphql`);

  // Every connection of Herald's (commands, subscriber, BullMQ; API and worker) came in on the TLS port.
  const admin = connect(redis.url);
  try {
    const clients = ((await admin.call('CLIENT', 'LIST')) as string)
      .split('\n')
      .filter((line) => / name=herald-/.test(line))
      .map((line) => /laddr=127\.0\.0\.1:(\d+)/.exec(line)![1]);
    expect(clients.length).toBeGreaterThanOrEqual(3);
    expect(new Set(clients)).toEqual(new Set([String(tlsPort)]));
  } finally {
    admin.disconnect();
  }
});

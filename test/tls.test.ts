import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect as connectHttp2, type ClientHttp2Session } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { print } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileProgressDocument, StartFileProcessingDocument, type FileProgressSubscription } from '../src/client/generated.js';
import { makeDocument } from './helpers/documents.js';
import { startHerald, wsClient, type Herald } from './helpers/herald.js';
import { startNginx, type Nginx } from './helpers/nginx.js';
import { connect } from './helpers/redis.js';
import { freePort, startRedisServer, type RedisServer } from './helpers/redis-server.js';
import { collect, waitFor } from './helpers/streams.js';

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
  redis = await startRedisServer({ extraArgs: tlsArgs(tlsPort) });
  herald = await startHerald({ REDIS_URL: `rediss://127.0.0.1:${tlsPort}`, ...clientFiles(), CHUNK_CHARS: '150' });
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

/**
 * A server's TLS settings, on `tlsPort` beside its plain port: the plain port stays for the test's
 * own look at who is connected (and for the helper's readiness check); Herald gets the TLS port only.
 */
function tlsArgs(tlsPort: number): string[] {
  return [
    ...['--tls-port', String(tlsPort), '--tls-ca-cert-file', join(certs, 'ca.crt')],
    ...['--tls-cert-file', join(certs, 'server.crt'), '--tls-key-file', join(certs, 'server.key')],
    ...['--tls-replication', 'yes'],
  ];
}

function clientFiles(): Record<string, string> {
  return {
    REDIS_TLS_CA_FILE: join(certs, 'ca.crt'),
    REDIS_TLS_CERT_FILE: join(certs, 'client.crt'),
    REDIS_TLS_KEY_FILE: join(certs, 'client.key'),
  };
}

/**
 * The local ports Herald's connections (named herald-*) reached on a server, read over its plain
 * port; on a sentinel, every client's but this one's (ioredis names no sentinel connection).
 */
async function heraldPortsOn(server: RedisServer, named = true): Promise<Set<string>> {
  const admin = connect(server.url);
  try {
    return new Set(
      ((await admin.call('CLIENT', 'LIST')) as string)
        .split('\n')
        .filter((line) => line.startsWith('id=') && (named ? / name=herald-/.test(line) : !line.includes(' cmd=client|list')))
        .map((line) => /laddr=127\.0\.0\.1:(\d+)/.exec(line)![1]!),
    );
  } finally {
    admin.disconnect();
  }
}

/** Runs one small file job on `on` and watches it to the end over graphql-ws. */
async function runJob(on: Herald): Promise<void> {
  const token = await on.token('tess');
  const { body } = await on.http(token, StartFileProcessingDocument, { input: { name: 'ha.md', content: makeDocument(4) } });
  const { fileId, cursor } = body.data!.startFileProcessing;
  const run = await collect<FileUpdate>(on.ws(token), FileProgressDocument, { fileId, after: cursor }, { field: 'fileProgress' });
  expect(run.errors).toEqual([]);
  expect(run.items.at(-1)).toMatchObject({ event: 'processing_completed', status: 'COMPLETED' });
  expect(run.items.map((u) => u.seq)).toEqual(run.items.map((_, i) => i + 1));
}

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
  expect(await heraldPortsOn(redis)).toEqual(new Set([String(tlsPort)]));
});

describe('Sentinel and Cluster over TLS (REDIS_TLS=true)', () => {
  it('follows a TLS sentinel to a TLS primary', async () => {
    const [dataPort, sentinelPort] = [await freePort(), await freePort()];
    const primary = await startRedisServer({ extraArgs: tlsArgs(dataPort) });
    const sentinel = await startRedisServer({
      sentinel: [
        `sentinel monitor herald 127.0.0.1 ${dataPort} 1`,
        `tls-port ${sentinelPort}`,
        `tls-ca-cert-file ${join(certs, 'ca.crt')}`,
        `tls-cert-file ${join(certs, 'server.crt')}`,
        `tls-key-file ${join(certs, 'server.key')}`,
        'tls-replication yes',
      ],
    });
    const env = { REDIS_SENTINELS: `127.0.0.1:${sentinelPort}`, REDIS_SENTINEL_MASTER: 'herald', REDIS_TLS: 'true' };
    const onSentinel = await startHerald({
      ...env,
      ...clientFiles(),
      REDIS_URL: '' /* empty is unset: instead of the suite's Redis */,
    });
    try {
      await runJob(onSentinel);
      expect(await heraldPortsOn(primary)).toEqual(new Set([String(dataPort)]));
      expect(await heraldPortsOn(sentinel, false)).toEqual(new Set([String(sentinelPort)]));
    } finally {
      await onSentinel.stop();
      await sentinel.stop();
      await primary.stop();
    }
  });

  it('runs on a Cluster of three TLS primaries (cluster bus on TLS too), sharded pub/sub included', async () => {
    const tlsPorts = [await freePort(), await freePort(), await freePort()];
    const nodes = await Promise.all(
      tlsPorts.map((port) =>
        startRedisServer({ extraArgs: ['--cluster-enabled', 'yes', '--tls-cluster', 'yes', ...tlsArgs(port)] }),
      ),
    );
    try {
      const tlsCli = [
        '--tls',
        '--cacert',
        join(certs, 'ca.crt'),
        '--cert',
        join(certs, 'client.crt'),
        '--key',
        join(certs, 'client.key'),
      ];
      execFileSync('redis-cli', [
        ...tlsCli,
        '--cluster',
        'create',
        ...tlsPorts.map((port) => `127.0.0.1:${port}`),
        '--cluster-yes',
      ]);
      await waitFor(async () => {
        const states = await Promise.all(nodes.map((node) => ask(node.url, (r) => r.cluster('INFO'))));
        return states.every((info) => info.includes('cluster_state:ok') && info.includes('cluster_known_nodes:3'));
      }, 20_000);
      const onCluster = await startHerald({
        REDIS_CLUSTER_NODES: `127.0.0.1:${tlsPorts[0]}`,
        REDIS_TLS: 'true',
        ...clientFiles(),
        REDIS_URL: '' /* empty is unset: instead of the suite's Redis */,
      });
      try {
        await runJob(onCluster);
        const reached = await Promise.all(nodes.map((node) => heraldPortsOn(node)));
        expect(reached).toEqual(tlsPorts.map((port) => new Set([String(port)])));
      } finally {
        await onCluster.stop();
      }
    } finally {
      await Promise.all(nodes.map((node) => node.stop()));
    }
  });
});

async function ask<T>(url: string, command: (redis: ReturnType<typeof connect>) => Promise<T>): Promise<T> {
  const redis = connect(url);
  try {
    return await command(redis);
  } finally {
    redis.disconnect();
  }
}

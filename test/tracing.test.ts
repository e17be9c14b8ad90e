import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FileProgressDocument, StartFileProcessingDocument, type FileProgressSubscription } from '../src/client/generated.js';
import { loadConfig } from '../src/config.js';
import { tracePublished } from '../src/jobs/metrics.js';
import { createMetrics } from '../src/transport/metrics.js';
import { startTracing } from '../src/tracing.js';
import { createUpdateStore } from '../src/updates/store.js';
import { makeDocument } from './helpers/documents.js';
import { clientsFor, TEST_SECRET, type HeraldClients } from './helpers/herald.js';
import { startCluster, type Cluster } from './helpers/processes.js';
import { redisUrl } from './helpers/redis.js';
import { collect, waitFor } from './helpers/streams.js';

type FileUpdate = FileProgressSubscription['fileProgress'];

/** One exported span as OTLP/JSON carries it, with its process's service name. */
interface ReceivedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  attributes: Record<string, unknown>;
}

interface OtlpValue {
  stringValue?: string;
  intValue?: number | string;
  boolValue?: boolean;
  doubleValue?: number;
}
interface OtlpAttribute {
  key: string;
  value: OtlpValue;
}
interface OtlpExport {
  resourceSpans: Array<{
    resource: { attributes: OtlpAttribute[] };
    scopeSpans: Array<{
      spans: Array<{ traceId: string; spanId: string; parentSpanId?: string; name: string; attributes: OtlpAttribute[] }>;
    }>;
  }>;
}

const valueOf = ({ stringValue, intValue, boolValue, doubleValue }: OtlpValue) =>
  stringValue ?? (intValue === undefined ? undefined : Number(intValue)) ?? boolValue ?? doubleValue;
const attributesOf = (attributes: OtlpAttribute[]) =>
  Object.fromEntries(attributes.map(({ key, value }) => [key, valueOf(value)]));

/** The collector stand-in: an OTLP/HTTP receiver on loopback that keeps every span and request path it is sent. */
async function startReceiver(port = 0) {
  const spans: ReceivedSpan[] = [];
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      requests.push(req.url ?? '');
      const body = JSON.parse(Buffer.concat(chunks).toString() || '{}') as Partial<OtlpExport>;
      for (const { resource, scopeSpans } of body.resourceSpans ?? []) {
        const service = String(attributesOf(resource.attributes)['service.name']);
        for (const scope of scopeSpans) {
          for (const span of scope.spans) spans.push({ ...span, service, attributes: attributesOf(span.attributes) });
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    spans,
    requests,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

type Receiver = Awaited<ReturnType<typeof startReceiver>>;

/**
 * Starts a file job through the API with no worker running, watches it over graphql-ws from its
 * first update, and only then starts the worker: every update after `queued` reaches the
 * subscriber live (through pub/sub), so each is a delivery span whatever the machine's load.
 */
async function runFileJob(
  api: HeraldClients,
  cluster: Pick<Cluster, 'startWorker'>,
): Promise<{ fileId: string; updates: FileUpdate[] }> {
  const token = await api.token({ sub: 'tess' });
  const { body } = await api.http(token, StartFileProcessingDocument, {
    input: { name: 'traced.md', content: makeDocument(20) },
  });
  const { fileId } = body.data!.startFileProcessing;
  let opened = () => {};
  const open = new Promise<void>((resolve) => (opened = resolve));
  const watching = collect<FileUpdate>(
    api.ws(token),
    FileProgressDocument,
    { fileId },
    {
      field: 'fileProgress',
      timeoutMs: 120_000,
      until: (items) => {
        if (items.length > 0) opened();
        return false;
      },
    },
  );
  // A subscription that errs or ends before its first update says so here, not at the test's timeout.
  await Promise.race([open, watching]);
  await cluster.startWorker();
  const run = await watching;
  expect(run.completed).toBe(true);
  return { fileId, updates: run.items };
}

const jobEnv = { CHUNK_CHARS: '150', OTEL_BSP_SCHEDULE_DELAY: '100' };

describe('with an OTLP endpoint', () => {
  let receiver: Receiver;
  let cluster: Cluster<1, 0>;
  let api: HeraldClients;

  beforeAll(async () => {
    receiver = await startReceiver();
    cluster = await startCluster({ ...jobEnv, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url }, { apis: 1, workers: 0 });
    api = clientsFor(cluster.apiUrls[0]);
  }, 120_000);

  afterAll(async () => {
    await api?.dispose();
    await cluster?.stop();
    await receiver?.stop();
  });

  it('makes the mutation, the attempt, each publish and each delivery spans of one trace across both processes', async () => {
    const { fileId } = await runFileJob(api, cluster);
    const { spans } = receiver;
    const named = (name: string) => spans.filter((span) => span.name === name);
    const complete = () =>
      named('herald.attempt').length > 0 &&
      named('herald.publish').some((span) => span.attributes['herald.update.event'] === 'processing_completed') &&
      named('herald.deliver').length > 0;
    await waitFor(complete, 60_000).catch(() => {
      const counts = Object.fromEntries(spans.map((span) => [`${span.service} ${span.name}`, named(span.name).length]));
      throw new Error(`the trace is incomplete after 60 s; spans received: ${JSON.stringify(counts)}`);
    });
    expect(named('herald.attempt')).toHaveLength(1);
    const [mutation] = named('mutation startFileProcessing');
    const [attempt] = named('herald.attempt');
    expect(mutation).toBeDefined();
    expect(attempt).toBeDefined();
    expect(mutation!.service).toBe('herald-api');
    expect(attempt!.service).toBe('herald-worker');
    expect(receiver.requests.every((path) => path === '/v1/traces')).toBe(true);

    // One trace: every span of both processes.
    expect(new Set(spans.map((span) => span.traceId))).toEqual(new Set([mutation!.traceId]));
    expect(attempt!.parentSpanId).toBe(mutation!.spanId);
    expect(attempt!.attributes['herald.job.id']).toBe(fileId);

    const publishes = named('herald.publish');
    const queued = publishes.filter((span) => span.attributes['herald.update.event'] === 'queued');
    expect(queued).toHaveLength(1);
    expect(queued[0]!.parentSpanId).toBe(mutation!.spanId);
    const fromWorker = publishes.filter((span) => span.service === 'herald-worker');
    expect(fromWorker.length).toBeGreaterThan(2);
    for (const publish of fromWorker) expect(publish.parentSpanId).toBe(attempt!.spanId);

    const publishIds = new Set(publishes.map((span) => span.spanId));
    const deliveries = named('herald.deliver');
    for (const delivery of deliveries) {
      expect(delivery.service).toBe('herald-api');
      expect(publishIds.has(delivery.parentSpanId!)).toBe(true);
      expect(delivery.attributes['herald.subscribers']).toBe(1);
      expect(delivery.attributes['herald.resource.id']).toBe(fileId);
    }
    // Once per update per stream on the instance: no publish has two deliveries.
    expect(new Set(deliveries.map((span) => span.parentSpanId)).size).toBe(deliveries.length);
  }, 120_000);
});

describe('without an OTLP endpoint', () => {
  let receiver: Receiver | null = null;
  afterEach(async () => {
    await receiver?.stop();
    receiver = null;
  });

  it('configures no tracing', () => {
    const base = { REDIS_URL: redisUrl(), JWT_SECRET: TEST_SECRET };
    expect(loadConfig(base).tracing).toBeNull();
    expect(
      loadConfig({ ...base, OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/', OTEL_SERVICE_NAME: 'herald-eu' }).tracing,
    ).toEqual({ tracesUrl: 'http://collector:4318/v1/traces', serviceName: 'herald-eu', scheduleDelayMs: 5_000 });
    expect(
      loadConfig({
        ...base,
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://jaeger:4318/v1/traces',
      }).tracing?.tracesUrl,
    ).toBe('http://jaeger:4318/v1/traces');
    expect(() => loadConfig({ ...base, OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' })).toThrow(
      /OTEL_EXPORTER_OTLP_ENDPOINT: must be an http:\/\/ or https:\/\/ URL/,
    );
  });

  it('creates no exporter and leaves the update path unwrapped', () => {
    expect(startTracing(null, 'herald-api')).toBeNull();
    const store = createUpdateStore(new Redis(redisUrl(), { lazyConnect: true }), {
      keyPrefix: 'unused:',
      historyLimit: 10,
      ttlSeconds: 60,
    });
    expect(tracePublished(store, false)).toBe(store);
    // The delivery meter without tracing is the plain histogram observation: one parameter, no message.
    expect(createMetrics().deliveries.fannedOut.length).toBe(1);
  });

  it('sends nothing, not even to the OTLP default endpoint, while a job runs', async () => {
    // Where an exporter left to its defaults would send: http://localhost:4318/v1/traces.
    receiver = await startReceiver(4318);
    const cluster = await startCluster(jobEnv, { apis: 1, workers: 0 });
    const api = clientsFor(cluster.apiUrls[0]);
    try {
      await runFileJob(api, cluster);
      // Many batch delays (OTEL_BSP_SCHEDULE_DELAY is 100 ms) for anything that would be exported.
      await new Promise((resolve) => setTimeout(resolve, 2_000));
    } finally {
      await api.dispose();
      await cluster.stop();
    }
    expect(receiver.requests).toEqual([]);
  }, 120_000);
});

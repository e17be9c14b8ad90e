import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A black-hole OTLP/HTTP endpoint for `--otlp`: it answers every export 200 and keeps only counts,
 * so Herald's exporter does its full work (batching, encoding, sending) without a collector.
 */
export async function startOtlpSink() {
  const received = { requests: 0, bytes: 0 };
  const server = createServer((req, res) => {
    req.on('data', (chunk: Buffer) => (received.bytes += chunk.length));
    req.on('end', () => {
      received.requests += 1;
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

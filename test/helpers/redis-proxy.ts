import { connect, createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

/** How much of a connection's first bytes is kept to find the name it gives itself (CLIENT SETNAME). */
const GREETING_BYTES = 4_096;

export interface RedisProxy {
  /** A Redis URL that reaches the real server through the proxy. */
  url: string;
  /**
   * Drops every connection that named itself `name` and turns away the ones that come back under
   * that name, until restore(): one of a process's connections goes down while the others work.
   */
  cut(name: string): void;
  restore(): void;
  close(): Promise<void>;
}

/** A TCP proxy in front of a real Redis, for a process whose connections one by one must fail. */
export async function startRedisProxy(redisUrl: string): Promise<RedisProxy> {
  const target = new URL(redisUrl);
  const connections = new Set<{ client: Socket; upstream: Socket; greeting: string }>();
  const refused = new Set<string>();
  const isRefused = (greeting: string) => [...refused].some((name) => greeting.includes(name));

  const server = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    const connection = { client, upstream, greeting: '' };
    connections.add(connection);
    const drop = () => {
      connections.delete(connection);
      client.destroy();
      upstream.destroy();
    };
    client.on('data', (chunk: Buffer) => {
      if (connection.greeting.length < GREETING_BYTES) connection.greeting += chunk.toString('latin1');
      if (isRefused(connection.greeting)) drop();
    });
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('close', drop).on('error', drop);
    upstream.on('close', drop).on('error', drop);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `redis://127.0.0.1:${port}`,
    cut(name) {
      refused.add(name);
      for (const connection of connections) if (isRefused(connection.greeting)) connection.client.destroy();
    },
    restore() {
      refused.clear();
    },
    async close() {
      for (const { client } of connections) client.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

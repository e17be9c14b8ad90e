import type { TestProject } from 'vitest/node';
import { ensureRedisServer, startRedisServer } from '../../src/dev/redis-server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
  }
}

/** One redis-server for the whole suite; every test file works under its own key prefix. */
export default async function setup(project: TestProject) {
  ensureRedisServer();
  const server = await startRedisServer();
  project.provide('redisUrl', server.url);
  return () => server.stop();
}

import { afterAll, describe, expect, it } from 'vitest';
import { createResourceRegistry } from '../src/resources/registry.js';
import { connect, uniquePrefix } from './helpers/redis.js';

const redis = connect();
afterAll(() => redis.disconnect());

describe('resource registry', () => {
  it('fails to record a resource when Redis refuses a command of its MULTI, instead of losing it silently', async () => {
    const prefix = uniquePrefix();
    const registry = createResourceRegistry(redis, prefix, 60);
    // A key of the wrong type makes HSET fail inside the MULTI, which Redis still EXECs.
    await redis.set(`${prefix}resource:{f1}`, 'not a hash');
    const record = {
      kind: 'file' as const,
      id: 'f1',
      ownerId: 'jo',
      projectId: null,
      name: 'a.md',
      createdAt: new Date().toISOString(),
    };
    await expect(registry.create(record)).rejects.toThrow(/WRONGTYPE/);
    await redis.del(`${prefix}resource:{f1}`);
    await registry.create(record);
    expect(await registry.get('f1')).toEqual(record);
  });
});

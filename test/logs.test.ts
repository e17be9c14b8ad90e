import { print } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signToken } from '../src/auth/token.js';
import { MeDocument, RefreshTokenDocument } from '../src/client/generated.js';
import { startHerald, type Herald } from './helpers/herald.js';
import { collect, waitFor } from './helpers/streams.js';

/** Every line the API logged, at the most verbose level, as written. */
const lines: string[] = [];
let herald: Herald;

beforeAll(async () => {
  herald = await startHerald({ LOG_LEVEL: 'trace' }, { workers: false, log: { write: (line: string) => void lines.push(line) } });
});
afterAll(() => herald?.stop());

describe('logs', () => {
  it('never contain a token: signing in over HTTP and WebSocket, refreshing, and failing to sign in', async () => {
    const token = await herald.token({ sub: 'alice', ttlSeconds: 600 });
    const renewed = await herald.token({ sub: 'alice', ttlSeconds: 1200 });
    const renewedInline = await herald.token({ sub: 'alice', ttlSeconds: 1800 });
    const forged = await signToken('another-secret-that-is-long-enough-for-hs256', { sub: 'alice' });
    const tokens = [token, renewed, renewedInline, forged];

    expect((await herald.http(token, MeDocument)).status).toBe(200);
    const ws = herald.ws(token);
    const refreshed = await collect(ws, RefreshTokenDocument, { token: renewed }, { field: 'refreshToken' });
    expect(refreshed.errors).toEqual([]);
    const inline = `mutation { refreshToken(token: ${JSON.stringify(renewedInline)}) { id } }`;
    expect((await herald.http(token, inline)).status).toBe(200);
    expect((await herald.http(forged, MeDocument)).status).toBe(401);
    const refused = await collect(herald.ws(forged), print(MeDocument), {}, { field: 'me' });
    expect(refused.errors).toHaveLength(1);
    await herald.dispose();
    await waitFor(() => lines.filter((line) => line.includes('"websocket closed"')).length === 2);

    const log = lines.join('');
    expect(log).toContain('"websocket connected"');
    expect(log).toContain('"websocket token refreshed"');
    expect(log).toContain('"code":4401');
    for (const secret of tokens) {
      expect(log).not.toContain(secret);
      // Not even the signature alone.
      expect(log).not.toContain(secret.split('.')[2]);
    }
  });
});

import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { FileProgressDocument, StartFileProcessingDocument } from '../src/client/generated.js';
import { nth } from './helpers/elements.js';
import { clientsFor } from './helpers/herald.js';
import { collect } from './helpers/streams.js';

const require = createRequire(import.meta.url);
const workdir = mkdtempSync(join(tmpdir(), 'herald-dev-'));
afterAll(() => rmSync(workdir, { recursive: true, force: true }));

it('npm run dev starts Redis, the API and a worker, prints a usable token, and stops cleanly', async () => {
  const env: Record<string, string> = { ...process.env, PORT: '0', LOG_LEVEL: 'warn' };
  delete env.REDIS_URL;
  delete env.JWT_SECRET;
  const child = spawn(
    process.execPath,
    ['--import', require.resolve('tsx'), new URL('../src/dev.ts', import.meta.url).pathname],
    {
      cwd: workdir,
      env,
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`dev did not start: ${output}`)), 20_000);
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('Ctrl-C stops everything')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  const url = nth(/GraphiQL:\s+(http:\/\/\S+)\/graphql/.exec(output)!, 1);
  const token = nth(/valid 7 days\):\n\s+(\S+)/.exec(output)!, 1);
  const redisPort = Number(/Redis:\s+redis:\/\/127\.0\.0\.1:(\d+) \(embedded, data in \.data\/redis\)/.exec(output)![1]);

  const graphiql = await fetch(`${url}/graphql`, { headers: { accept: 'text/html' } });
  expect(await graphiql.text()).toContain(`Bearer ${token}`);

  const api = clientsFor(url);
  const { body } = await api.http(token, StartFileProcessingDocument, {
    input: { name: 'hello.md', content: 'Herald is a progress server. It works.' },
  });
  const { fileId, cursor } = body.data!.startFileProcessing;
  const run = await collect<{ event: string }>(
    api.ws(token),
    FileProgressDocument,
    { fileId, after: cursor },
    { field: 'fileProgress' },
  );
  await api.dispose();
  expect(run.items.at(-1)!.event).toBe('processing_completed');

  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  child.kill('SIGINT');
  expect(await exited).toBe(0);
  expect(readdirSync(join(workdir, '.data'))).toEqual(expect.arrayContaining(['redis', 'jwt-secret']));
  const stillUp = await fetch(`${url}/healthz`).then(
    () => true,
    () => false,
  );
  expect(stillUp).toBe(false);
  const redisUp = await new Promise<boolean>((resolve) => {
    const socket = connect(redisPort, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
  expect(redisUp).toBe(false);
});

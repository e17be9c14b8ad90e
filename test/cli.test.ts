import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTokenVerifier } from '../src/auth/token.js';
import { FileProgressDocument, NotificationInboxDocument, StartFileProcessingDocument } from '../src/client/index.js';
import { freePort } from '../src/dev/redis-server.js';
import { makeDocument } from './helpers/documents.js';
import { startHerald, TEST_SECRET, type Herald } from './helpers/herald.js';
import { collect } from './helpers/streams.js';

const root = fileURLToPath(new URL('../', import.meta.url));
const bin = join(root, 'bin/herald.mjs');
let herald: Herald;
let dir: string;

beforeAll(async () => {
  herald = await startHerald();
  dir = mkdtempSync(join(tmpdir(), 'herald-cli-'));
});
afterAll(async () => {
  await herald?.stop();
  rmSync(dir, { recursive: true, force: true });
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `herald args` as a user would (its stdout a pipe, not a terminal), against the test server. */
function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const { HERALD_URL, HERALD_TOKEN, JWT_SECRET, ...inherited } = process.env;
  const child = spawn(process.execPath, [bin, ...args], {
    cwd: root,
    env: { ...inherited, HERALD_URL: herald.url, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const run: Run = { code: null, stdout: '', stderr: '' };
  child.stdout.on('data', (chunk: Buffer) => (run.stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (run.stderr += chunk.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ ...run, code })));
}

/** The seqs of describeUpdate lines (`#3  PROCESSING ...`), in the order printed. */
function seqsOf(stdout: string): number[] {
  return [...stdout.matchAll(/^#(\d+) /gm)].map((match) => Number(match[1]));
}

async function startFile(token: string, sections: number) {
  const { body } = await herald.http(token, StartFileProcessingDocument, {
    input: { name: 'notes.md', content: makeDocument(sections) },
  });
  return body.data!.startFileProcessing;
}

describe('herald (the command line)', () => {
  it('token: prints a token the server accepts, with the claims asked for', async () => {
    const run = await cli(['token', '--sub', 'kim', '--roles', 'ops,admin', '--projects', 'demo', '--ttl', '1h'], {
      JWT_SECRET: TEST_SECRET,
    });
    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(run.stdout.trim().split('\n')).toHaveLength(1);
    const viewer = await createTokenVerifier({ secret: TEST_SECRET, provider: null })(run.stdout.trim());
    expect(viewer).toMatchObject({ id: 'kim', roles: ['ops', 'admin'], projects: ['demo'] });
    expect(viewer.expiresAt! - Math.floor(Date.now() / 1000)).toBeGreaterThan(3590);
  });

  it('process: shows every update, ends at 100 % with the summary, exits 0', async () => {
    const file = join(dir, 'notes.md');
    writeFileSync(file, makeDocument(4));
    const run = await cli(['process', file, '--token', await herald.token('pia')]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const seqs = seqsOf(run.stdout);
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
    expect(run.stdout).toMatch(/^#\d+ +COMPLETED +100% +processing_completed/m);
    expect(run.stdout).toMatch(/^Completed: \d+ chunks, \d+ sentences \(.*question.*\), \d+ words$/m);
  });

  it('process: exits 1 with the reason when the job fails', async () => {
    const file = join(dir, 'blank.md');
    writeFileSync(file, '#\n---\n'); // accepted, but holds no sentence
    const run = await cli(['process', file], { HERALD_TOKEN: await herald.token('pia') });
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/FAILED +processing_failed/);
    expect(run.stderr).toMatch(/^herald: failed: .*no text/m);
  });

  it('ask: streams the answer, then its sources', async () => {
    const token = await herald.token('ada');
    const file = await startFile(token, 3);
    await collect(herald.ws(token), FileProgressDocument, { fileId: file.fileId, after: file.cursor }, { field: 'fileProgress' });
    const run = await cli(['ask', 'Why does topic 2 matter?', '--file', file.fileId], { HERALD_TOKEN: token });
    expect(run).toMatchObject({ code: 0, stderr: '' });
    const [answer, ...rest] = run.stdout.split('\n');
    expect(answer?.trim().length).toBeGreaterThan(0);
    expect(rest[0]).toBe('Sources:');
    expect(rest[1]).toMatch(new RegExp(`^  \\[1\\] file ${file.fileId}, sentence \\d+ \\(score [\\d.]+\\): `));
  });

  it('watch: prints every update from the cursor once, in order, as lines or as JSON', async () => {
    const token = await herald.token('wes');
    const file = await startFile(token, 6);
    const lines = await cli(['watch', 'file', file.fileId, '--after', file.cursor], { HERALD_TOKEN: token });
    expect(lines).toMatchObject({ code: 0, stderr: '' });
    const seqs = seqsOf(lines.stdout);
    expect(seqs.length).toBeGreaterThan(5);
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
    expect(lines.stdout.trim().split('\n').at(-1)).toMatch(/COMPLETED +100% +processing_completed/);

    const json = await cli(['watch', 'file', file.fileId, '--json', `--after=${file.cursor}`], { HERALD_TOKEN: token });
    expect(json.code).toBe(0);
    const updates = json.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { seq: number; fileId: string; cursor: string });
    expect(updates.map((u) => u.seq)).toEqual(seqs);
    expect(updates.every((u) => u.fileId === file.fileId && u.cursor.length > 0)).toBe(true);
  });

  it('notify: the notification reaches the user', async () => {
    const run = await cli(
      ['notify', '--user', 'bo', '--title', 'Deploy done', '--level', 'success', '--data', '{"url":"/deploys/42"}'],
      {
        HERALD_TOKEN: await herald.token('al'),
      },
    );
    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(run.stdout).toMatch(/^notification \S+ sent to user bo\n$/);
    const { body } = await herald.http(await herald.token('bo'), NotificationInboxDocument, { first: 5 });
    expect(body.data!.notificationInbox.edges.map((e) => e.node)).toEqual([
      expect.objectContaining({ title: 'Deploy done', level: 'SUCCESS', data: { url: '/deploys/42' }, read: false }),
    ]);
  });

  it('says what is wrong with the arguments, exits 2, and --help exits 0', async () => {
    const runs = await Promise.all([
      cli(['watch', 'folder', 'x'], { HERALD_TOKEN: 'x' }),
      cli(['frobnicate']),
      cli(['notify', '--title', 'Hi'], { HERALD_TOKEN: 'x' }),
      cli(['process']),
      cli(['token', '--ttl', 'soon'], { JWT_SECRET: TEST_SECRET }),
      cli(['watch', 'file', 'f1']),
      cli(['process', join(dir, 'missing.md'), '--token', 'x']),
    ]);
    const messages = [
      'watch: expected file or query, got "folder"',
      'unknown command "frobnicate"',
      'notify: give exactly one of --user, --role, --project and --global',
      'process: expected <file>, got none',
      'token: --ttl "soon" is not a duration',
      'no access token: pass --token or set HERALD_TOKEN',
      `process: cannot read ${join(dir, 'missing.md')}: ENOENT`,
    ];
    for (const [i, run] of runs.entries()) {
      expect(run.code, run.stderr).toBe(2);
      expect(run.stderr).toContain(`herald: ${messages[i]}`);
      expect(run.stderr).not.toMatch(/^\s+at /m);
    }
    const help = await cli(['watch', '--help']);
    expect(help).toMatchObject({ code: 0, stderr: '' });
    expect(help.stdout).toMatch(/^Usage: herald watch file\|query <id>/);
  });

  it('exits 4 when nothing answers at the URL, for a subscription and for a mutation', async () => {
    const port = await freePort();
    const token = await herald.token('cy');
    const runs = await Promise.all([
      cli(['--url', `http://127.0.0.1:${port}`, 'watch', 'file', 'f1'], { HERALD_TOKEN: token }),
      cli(['notify', '--user', 'x', '--title', 'Hi'], { HERALD_URL: `http://127.0.0.1:${port}`, HERALD_TOKEN: token }),
    ]);
    for (const run of runs) {
      expect(run.code).toBe(4);
      expect(run.stderr).toBe(`herald: cannot connect to ws://127.0.0.1:${port}/graphql\n`);
    }
  });

  it('exits 3 with the server code for a bad token, someone else’s file, or a missing one', async () => {
    const file = await startFile(await herald.token('owner'), 1);
    const runs = await Promise.all([
      cli(['watch', 'file', file.fileId], { HERALD_TOKEN: 'not-a-jwt' }),
      cli(['notify', '--user', 'x', '--title', 'Hi'], { HERALD_TOKEN: 'not-a-jwt' }),
      cli(['watch', 'file', file.fileId], { HERALD_TOKEN: await herald.token('mallory') }),
      cli(['watch', 'query', 'no-such-query'], { HERALD_TOKEN: await herald.token('mallory') }),
    ]);
    const codes = ['UNAUTHENTICATED', 'UNAUTHENTICATED', 'FORBIDDEN', 'NOT_FOUND'];
    for (const [i, run] of runs.entries()) {
      expect(run.code, run.stderr).toBe(3);
      expect(run.stderr).toMatch(new RegExp(`^herald: ${codes[i]}: .+\\n$`));
    }
  });
});

import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { JobDocument, QueryProgressDocument, StartQueryDocument } from '../src/client/generated.js';
import { launchChromium, signedInPage } from './helpers/browser.js';
import { startHerald, type Herald } from './helpers/herald.js';
import { fileWithoutSentences } from './helpers/jobs.js';
import { connect } from './helpers/redis.js';
import { collect } from './helpers/streams.js';

/** A job on a busy two-core machine, and the dashboard's own refresh (every 5 s). */
const PAGE_WAIT = { timeout: 30_000 };

let h: Herald;
let browser: Browser;
const redis = connect();

beforeAll(async () => {
  [h, browser] = await Promise.all([startHerald({ JOB_ATTEMPTS: '1' }), launchChromium()]);
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await h?.stop();
  redis.disconnect();
});

/** The live page, signed in as `token`'s user. */
function signIn(token: string): Promise<Page> {
  return signedInPage(browser, h.url, token, PAGE_WAIT);
}

/** Queries of the token's user that fail for good: the file they ask about has lost its sentences (put back afterwards). */
async function failedQueries(token: string, questions = ['What does a cache keep?', 'Where is hot data?']): Promise<string[]> {
  const file = await fileWithoutSentences(h, redis, token);
  const ids: string[] = [];
  for (const question of questions) {
    const { body: asked } = await h.http(token, StartQueryDocument, { input: { question, fileIds: [file.fileId] } });
    const { queryId, cursor } = asked.data!.startQuery;
    await collect(h.ws(token), QueryProgressDocument, { queryId, after: cursor }, { field: 'queryProgress' });
    ids.push(queryId);
  }
  await file.restore();
  return ids;
}

it('shows an admin the counts per queue and the failed jobs with their reasons; Retry runs one again, Remove drops one; a non-admin is refused', async () => {
  const [jo, admin] = await Promise.all([h.token('jo'), h.token({ sub: 'root', roles: ['admin'] })]);
  const [retried, removed] = await failedQueries(jo);
  const reasonOf = async (id: string) => (await h.http(jo, JobDocument, { id })).body.data!.job!.failedReason;
  const reason = await reasonOf(retried!);
  expect(reason).toBeTruthy();

  const page = await signIn(admin);
  const count = (queue: string, state: string) =>
    page.locator(`#queue-counts tr[data-queue="${queue}"] td[data-state="${state}"]`);
  await expect.poll(() => count('queries', 'failed').textContent(), PAGE_WAIT).toBe('2');
  expect(await count('files', 'completed').textContent()).toBe('1');
  expect(await page.locator('#queue-counts tr[data-queue="files"] td').first().textContent()).toBe('1'); // its worker
  const item = (id: string) => page.locator(`#failed-jobs li[data-job-id="${id}"]`);
  expect(await item(retried!).locator('.reason').textContent()).toBe(reason);
  expect(await item(removed!).locator('.owner').textContent()).toBe('started by jo, 1 attempts');

  await item(removed!).locator('.remove').click();
  await item(removed!).waitFor({ state: 'detached', ...PAGE_WAIT });
  expect((await h.http(jo, JobDocument, { id: removed! })).body.data!.job).toMatchObject({ state: 'FAILED' });

  await item(retried!).locator('.retry').click();
  await item(retried!).waitFor({ state: 'detached', ...PAGE_WAIT });
  await expect.poll(() => count('queries', 'completed').textContent(), PAGE_WAIT).toBe('1');
  expect(await count('queries', 'failed').textContent()).toBe('0');
  expect((await h.http(jo, JobDocument, { id: retried! })).body.data!.job).toMatchObject({ state: 'COMPLETED' });
  expect(await page.locator('#error').textContent()).toBe('');

  // jo sees no dashboard, and the server refuses jo's own requests for it from the same page.
  const mine = await signIn(jo);
  expect(await mine.locator('#queues').isHidden()).toBe(true);
  const codes = await mine.evaluate(async (token) => {
    const ask = async (query: string) => {
      const response = await fetch('/graphql', {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ query }),
      });
      const body = (await response.json()) as { errors?: Array<{ extensions?: { code?: string } }> };
      return body.errors?.[0]?.extensions?.code;
    };
    return [await ask('{ jobQueues { name } }'), await ask('mutation { removeJob(id: "x") { id } }')];
  }, jo);
  expect(codes).toEqual(['FORBIDDEN', 'FORBIDDEN']);
}, 120_000);

it('lets a user retry a failed job of their own from the My jobs panel, which then shows it completed', async () => {
  const kai = await h.token('kai');
  const [failed] = await failedQueries(kai, ['What does a cache keep?']);
  const page = await signIn(kai);
  const job = page.locator(`#job-list li[data-job-id="${failed}"]`);
  await expect.poll(() => job.getAttribute('data-state'), PAGE_WAIT).toBe('FAILED');
  await job.locator('.retry').click();
  await expect.poll(() => job.getAttribute('data-state'), PAGE_WAIT).toBe('COMPLETED');
  expect(await job.locator('.retry').isHidden()).toBe(true);
  expect((await h.http(kai, JobDocument, { id: failed! })).body.data!.job).toMatchObject({
    state: 'COMPLETED',
    failedReason: null,
  });
  expect(await page.locator('#error').textContent()).toBe('');
}, 120_000);

import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createPublisher, type Publisher } from '../src/publisher.js';
import { SSE_SESSION_PATH } from '../src/transport/event-source.js';
import { encodeCursor } from '../src/updates/cursor.js';
import type { UpdateEntry } from '../src/updates/types.js';
import { launchChromium, PAGE_WAIT } from './helpers/browser.js';
import { clientsFor, type HeraldClients } from './helpers/herald.js';
import { startCluster, type Cluster } from './helpers/processes.js';
import { redisUrl, uniquePrefix } from './helpers/redis.js';

const keyPrefix = uniquePrefix();
let cluster: Cluster<1, 0>;
let browser: Browser;
let api: HeraldClients;
let publisher: Publisher;

beforeAll(async () => {
  [cluster, browser] = await Promise.all([startCluster({ KEY_PREFIX: keyPrefix }, { apis: 1, workers: 0 }), launchChromium()]);
  api = clientsFor(cluster.apiUrls[0]);
  publisher = createPublisher({ env: { REDIS_URL: redisUrl(), KEY_PREFIX: keyPrefix } });
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await publisher?.close();
  await api?.dispose();
  await cluster?.stop();
});

/** What the page's EventSource saw, kept on `window` by the script `watch` runs. */
interface Seen {
  seqs: number[];
  /** The `lastEventId` of each `next` event, in order. */
  ids: string[];
  opens: number;
  errors: number;
  completed: boolean;
}

/**
 * In the page: trades `token` for the SSE cookie (the POST is the only place the token goes), then
 * opens an EventSource on `url` (same origin, no token in it) and records what arrives; closes it
 * on `complete`, since an EventSource would otherwise reconnect for ever.
 */
async function watch(page: Page, token: string, url: string): Promise<void> {
  await page.evaluate(
    async ({ token, url, sessionPath }) => {
      const session = await fetch(sessionPath, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
      if (session.status !== 204) throw new Error(`session: ${session.status}`);
      const seen: Seen = { seqs: [], ids: [], opens: 0, errors: 0, completed: false };
      Object.assign(window, { seen });
      const source = new EventSource(url);
      source.addEventListener('open', () => (seen.opens += 1));
      source.addEventListener('error', () => (seen.errors += 1));
      source.addEventListener('next', (event) => {
        const { data } = JSON.parse(event.data as string) as { data: { fileProgress: { seq: number } } };
        seen.seqs.push(data.fileProgress.seq);
        seen.ids.push(event.lastEventId);
      });
      source.addEventListener('complete', () => {
        seen.completed = true;
        source.close();
      });
    },
    { token, url, sessionPath: SSE_SESSION_PATH },
  );
}

const seen = (page: Page) => page.evaluate(() => (window as unknown as { seen: Seen }).seen);

it("keeps every update in a browser's EventSource, authenticated by the SSE cookie, through an API restart between two updates", async () => {
  const file = await publisher.register({ kind: 'file', ownerId: 'ivy' });
  const entries: UpdateEntry[] = [
    await publisher.append(file, { event: 'processing_started', status: 'PROCESSING', progress: 0 }),
  ];
  const page = await browser.newPage();
  // The live page's origin, where the page's own scripts run.
  await page.goto(`${api.url}/`);
  const query = 'subscription($id: ID!) { fileProgress(fileId: $id) { seq event } }';
  const path = `/graphql?query=${encodeURIComponent(query)}&variables=${encodeURIComponent(JSON.stringify({ id: file.id }))}`;
  await watch(page, await api.token('ivy'), path);
  await expect.poll(async () => (await seen(page)).seqs, PAGE_WAIT).toEqual([1]);
  entries.push(await publisher.append(file, { event: 'extraction_progress', status: 'PROCESSING', progress: 30 }));
  await expect.poll(async () => (await seen(page)).seqs, PAGE_WAIT).toEqual([1, 2]);

  await cluster.apis[0].stop();
  await expect.poll(async () => (await seen(page)).errors, PAGE_WAIT).toBeGreaterThan(0);
  entries.push(await publisher.append(file, { event: 'extraction_progress', status: 'PROCESSING', progress: 60 }));
  await cluster.restartApi(0);
  await expect.poll(async () => (await seen(page)).seqs, PAGE_WAIT).toEqual([1, 2, 3]);
  entries.push(await publisher.append(file, { event: 'processing_completed', status: 'COMPLETED', progress: 100 }));
  await expect.poll(async () => (await seen(page)).completed, PAGE_WAIT).toBe(true);

  const { seqs, ids, opens } = await seen(page);
  expect(seqs).toEqual([1, 2, 3, 4]);
  expect(ids).toEqual(entries.map((entry) => encodeCursor({ epoch: entry.epoch, seq: entry.seq })));
  expect(opens).toBeGreaterThanOrEqual(2);
  await page.close();
}, 60_000);

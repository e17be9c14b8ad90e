import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Browser, Locator, Page, Request } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.js';
import { NotificationSummaryDocument, SendNotificationDocument, type NotificationLevel } from '../src/client/generated.js';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { makeDocument } from './helpers/documents.js';
import { launchChromium, PAGE_WAIT } from './helpers/browser.js';
import { clientsFor, TEST_SECRET, type HeraldClients } from './helpers/herald.js';
import { startCluster, type Cluster } from './helpers/processes.js';
import { redisUrl, uniquePrefix } from './helpers/redis.js';

const artifacts = fileURLToPath(new URL('./artifacts/', import.meta.url));
/** GraphiQL is about 9 MB of script for the browser to parse: 15 to 26 s on this two-core machine when it is busy. */
const GRAPHIQL_WAIT = { timeout: 60_000 };

let cluster: Cluster<1, 1>;
let browser: Browser;
let api: HeraldClients;

beforeAll(async () => {
  [cluster, browser] = await Promise.all([
    startCluster(
      { CHUNK_CHARS: '100', HISTORY_LIMIT: '5000', TOKEN_FLUSH_TOKENS: '2', PROGRESS_UPDATES: '1000' },
      { apis: 1, workers: 1 },
    ),
    // openPage's routing records any request that tried to leave the machine.
    launchChromium(),
  ]);
  api = clientsFor(cluster.apiUrls[0]);
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await api?.dispose();
  await cluster?.stop();
});

/** Anything else is what an air-gapped cluster or a strict network would block. */
const isLoopback = (url: URL) => ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);

/** A tab openPage opened: the errors its scripts threw, and every request for beyond loopback it attempted (each refused). */
interface OpenedPage {
  page: Page;
  errors: string[];
  outside: string[];
}

/** Opens `url` (the live page at `/` unless told otherwise) in a fresh tab with its own storage. */
async function openPage(url: string): Promise<OpenedPage> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  const errors: string[] = [];
  const outside: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.context().route(
    (requested) => !isLoopback(requested),
    (route) => {
      outside.push(route.request().url());
      return route.abort('blockedbyclient');
    },
  );
  await page.addInitScript(recordShown);
  await page.goto(url);
  return { page, errors, outside };
}

/** What the live page showed, each change kept as it happened (see recordShown). */
interface Shown {
  statuses: string[];
  latencies: string[];
  /** The banner (null while hidden) and the bell's count, after each change of either. */
  unread: Array<{ banner: string | null; bell: string }>;
}

/**
 * Runs in the page: keeps every status the connection line shows, every latency, and the banner
 * and bell together, so a test can tell what was shown even when it lasted less than a locator's
 * polling interval, and that the banner and the bell never disagreed, not even for a moment.
 */
function recordShown() {
  const shown: Shown = { statuses: [], latencies: [], unread: [] };
  (window as unknown as { shown: Shown }).shown = shown;
  document.addEventListener('DOMContentLoaded', () => {
    const line = document.querySelector('#connection');
    const latency = document.querySelector('#latency');
    const banner = document.querySelector('#summary');
    const bell = document.querySelector('#unread-count');
    if (!(line instanceof HTMLElement && latency && banner instanceof HTMLElement && bell)) return;
    const text = { childList: true, characterData: true, subtree: true };
    new MutationObserver(() => shown.statuses.push(line.dataset.status ?? '')).observe(line, {
      attributes: true,
      attributeFilter: ['data-status'],
    });
    new MutationObserver(() => shown.latencies.push(latency.textContent ?? '')).observe(latency, text);
    const unread = () => shown.unread.push({ banner: banner.hidden ? null : banner.textContent, bell: bell.textContent ?? '' });
    const watched = { ...text, attributes: true, attributeFilter: ['hidden'] };
    new MutationObserver(unread).observe(banner, watched);
    new MutationObserver(unread).observe(bell, watched);
  });
}

const shownOn = (page: Page) => page.evaluate(() => (window as unknown as { shown: Shown }).shown);
const shownStatuses = async (page: Page) => (await shownOn(page)).statuses;

/** The count a banner states: "No unread notifications." is 0. */
function bannerCount(banner: string): number {
  if (banner === 'No unread notifications.') return 0;
  const count = /(\d+) unread/.exec(banner);
  if (!count) throw new Error(`the banner states no count: ${banner}`);
  return Number(count[1]);
}

/** Every banner the page showed stated the count its bell showed at that moment. */
async function expectBannerAgreedWithBell(page: Page) {
  const shown = (await shownOn(page)).unread.filter((entry) => entry.banner !== null);
  expect(shown.length).toBeGreaterThan(0);
  for (const { banner, bell } of shown) expect(bannerCount(banner!), `banner "${banner}" beside bell ${bell}`).toBe(Number(bell));
}

async function signIn(page: Page, token: string) {
  await page.getByLabel('Access token').fill(token);
  await page.getByRole('button', { name: 'Connect' }).click();
  await page.locator('#connection[data-status=connected]').waitFor(PAGE_WAIT);
}

/** The seq of every update the card received, in the order it received them. */
async function seqsOf(card: Locator): Promise<number[]> {
  const seqs = (await card.getAttribute('data-seqs')) ?? '';
  return seqs ? seqs.split(' ').map(Number) : [];
}

const oneToN = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

async function notify(from: string, to: string, title: string, level: NotificationLevel) {
  const { body } = await api.http(from, SendNotificationDocument, { input: { target: { kind: 'USER', id: to }, title, level } });
  expect(body.errors).toBeUndefined();
}

describe('the live page', () => {
  it('serves the page and its script with caching headers, and no token outside dev', async () => {
    const page = await fetch(`${api.url}/`);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('cache-control')).toBe('no-cache');
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    const html = await page.text();
    expect(html).toMatch(/<input id="token"[^>]* value=""\s*\/?>/);
    const script = /src="(\/app\.js\?v=[^"]+)"/.exec(html)![1];
    const versioned = await fetch(`${api.url}${script}`);
    expect(versioned.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(versioned.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    const etag = versioned.headers.get('etag')!;
    const again = await fetch(`${api.url}/app.js`, { headers: { 'if-none-match': etag } });
    expect(again.status).toBe(304);
    expect(again.headers.get('cache-control')).toBe('no-cache');
  });

  it('shows the offline summary, a document processed to 100 %, an answer streaming in, and notifications from others', async () => {
    const [pia, ola] = await Promise.all([api.token('pia'), api.token('ola')]);
    await notify(ola, 'pia', 'Welcome back', 'WARNING');
    const { page, errors, outside } = await openPage(`${api.url}/`);
    const consoleErrors: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error') consoleErrors.push(message.text());
    });
    await signIn(page, pia);
    await expect.poll(() => page.textContent('#summary'), PAGE_WAIT).toBe('While you were away: 1 unread (1 warning).');
    expect(await page.textContent('#viewer')).toBe('Signed in as pia');
    expect(await page.textContent('#unread-count')).toBe('1');

    // Upload: the file's name becomes the document's.
    await page.getByLabel('Upload a text or Markdown file').setInputFiles({
      name: 'topics.md',
      mimeType: 'text/markdown',
      buffer: Buffer.from(makeDocument(6)),
    });
    expect(await page.getByLabel('Name').inputValue()).toBe('topics.md');
    await page.getByRole('button', { name: 'Process' }).click();
    const card = page.locator('#documents .card').first();
    await page.locator('#documents .card[data-status=COMPLETED]').waitFor(PAGE_WAIT);
    expect(await card.locator('h3').textContent()).toBe('topics.md');
    expect(await card.locator('progress').evaluate((bar: HTMLProgressElement) => bar.value)).toBe(100);
    expect(await card.locator('.percent').textContent()).toBe('100 %');
    const seqs = await seqsOf(card);
    expect(seqs).toEqual(oneToN(seqs.length));
    const classes = await card
      .locator('.sentences li')
      .evaluateAll((items) => items.map((item) => (item as HTMLElement).dataset.class));
    const summary = /^(\d+) sentences: /.exec((await card.locator('.detail').textContent()) ?? '');
    expect(classes).toHaveLength(Number(summary?.[1]));
    expect(new Set(classes)).toEqual(new Set(['other', 'question', 'claim', 'definition']));

    // Ask from the keyboard, and record every text the answer shows on its way.
    await page.locator('#answers').evaluate((answers) => {
      const seen: string[] = [];
      new MutationObserver(() => {
        const text = answers.querySelector('.answer')?.textContent;
        if (text && text !== seen.at(-1)) seen.push(text);
        answers.dataset.seen = JSON.stringify(seen);
      }).observe(answers, { subtree: true, childList: true, characterData: true });
    });
    await page.getByLabel('Ask about your documents').fill('Why does topic 3 matter?');
    await page.keyboard.press('Enter');
    const answer = page.locator('#answers .card').first();
    await page.locator('#answers .card[data-status=COMPLETED]').waitFor(PAGE_WAIT);
    expect(await answer.locator('.answer').getAttribute('aria-busy')).toBe('false');
    const shown = JSON.parse((await page.locator('#answers').getAttribute('data-seen')) ?? '[]') as string[];
    expect(shown.length).toBeGreaterThan(2);
    for (const text of shown) expect(shown.at(-1)!.startsWith(text)).toBe(true);
    expect(shown.at(-1)).toContain('topic 3');
    expect(await answer.locator('.sources li').count()).toBeGreaterThan(0);
    const answerSeqs = await seqsOf(answer);
    expect(answerSeqs).toEqual(oneToN(answerSeqs.length));

    // Live: the jobs' own notifications, then one from another user, each counted on the bell.
    await notify(ola, 'pia', 'Build 42 is green', 'SUCCESS');
    await expect.poll(() => page.textContent('#toast'), PAGE_WAIT).toBe('success: Build 42 is green');
    await expect.poll(() => page.locator('#inbox-list li[data-read=false]').count(), PAGE_WAIT).toBe(4);
    expect(await page.textContent('#unread-count')).toBe('4');
    const { body } = await api.http(pia, NotificationSummaryDocument);
    expect(body.data!.notificationSummary.unread).toBe(4);

    await page.locator('#bell').focus();
    await page.keyboard.press('Enter');
    await page.locator('#inbox').waitFor({ state: 'visible' });
    expect(await page.locator('#bell').getAttribute('aria-expanded')).toBe('true');
    expect(await page.locator('#inbox-list .title').first().textContent()).toBe('Build 42 is green');
    await expect.poll(() => page.textContent('#latency'), PAGE_WAIT).toMatch(/ms round trip$/);
    mkdirSync(artifacts, { recursive: true });
    await page.screenshot({ path: `${artifacts}live-page.png` });

    await page.getByRole('button', { name: 'Mark all read' }).click();
    await expect.poll(() => page.textContent('#unread-count'), PAGE_WAIT).toBe('0');
    expect(await page.locator('#inbox-list li[data-read=false]').count()).toBe(0);
    await expectBannerAgreedWithBell(page);
    await page.keyboard.press('Escape');
    expect(await page.locator('#inbox').isHidden()).toBe(true);
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('bell');
    expect(errors).toEqual([]);
    expect(consoleErrors).toEqual([]);
    expect(outside, 'requests for beyond loopback').toEqual([]);
    await page.close();
  });

  it('agrees with itself through a pasted document, a question and notifications: banner and bell, latency', async () => {
    const [uma, ola] = await Promise.all([api.token('uma'), api.token('ola')]);
    const { page, errors, outside } = await openPage(`${api.url}/`);
    await signIn(page, uma);
    await expect.poll(() => page.textContent('#summary'), PAGE_WAIT).toBe('No unread notifications.');

    await page.getByLabel('or paste its text').fill(makeDocument(4));
    await page.getByRole('button', { name: 'Process' }).click();
    await page.locator('#documents .card[data-status=COMPLETED]').waitFor(PAGE_WAIT);
    // Every section of the document ends with the same sentence, which this question matches best.
    await page.getByLabel('Ask about your documents').fill('What is the team working on?');
    await page.getByRole('button', { name: 'Ask' }).click();
    await page.locator('#answers .card[data-status=COMPLETED]').waitFor(PAGE_WAIT);
    const sources = await page
      .locator('#answers .card .sources li')
      .evaluateAll((items) => items.map((item) => item.firstChild?.textContent ?? ''));
    expect(sources.length).toBeGreaterThan(0);
    expect(new Set(sources).size, `passages repeated in: ${sources.join(' | ')}`).toBe(sources.length);

    // Each job tells its owner it is done.
    await expect.poll(() => page.textContent('#unread-count'), PAGE_WAIT).toBe('2');
    expect(await page.textContent('#summary')).toBe('2 unread notifications.');
    await notify(ola, 'uma', 'Build 43 is green', 'SUCCESS');
    await expect.poll(() => page.textContent('#unread-count'), PAGE_WAIT).toBe('3');
    await page.locator('#bell').click();
    await page.locator('#inbox-list li[data-read=false] .mark-read').first().click();
    await expect.poll(() => page.textContent('#unread-count'), PAGE_WAIT).toBe('2');
    await page.getByRole('button', { name: 'Mark all read' }).click();
    await expect.poll(() => page.textContent('#unread-count'), PAGE_WAIT).toBe('0');
    expect(await page.textContent('#summary')).toBe('No unread notifications.');
    await expectBannerAgreedWithBell(page);

    // The round trip shows once a ping was answered, and never a made-up number before that.
    await expect.poll(() => page.textContent('#latency'), PAGE_WAIT).toMatch(/ms round trip$/);
    const latencies = (await shownOn(page)).latencies.filter(Boolean);
    expect(latencies[0]).toBe('round trip –');
    for (const latency of latencies) expect(latency).toMatch(/^(round trip –|(< )?\d+(\.\d)? ms round trip)$/);
    expect(latencies).not.toContain('0.0 ms round trip');
    expect(errors).toEqual([]);
    expect(outside, 'requests for beyond loopback').toEqual([]);
    await page.close();
  });

  it('keeps every update of a job through the API being killed and restarted mid-job', async () => {
    const { page, errors, outside } = await openPage(`${api.url}/`);
    await signIn(page, await api.token('rex'));
    await page.getByLabel('or paste its text').fill(makeDocument(400));
    await page.getByLabel('Name').fill('long.md');
    await page.getByRole('button', { name: 'Process' }).click();
    const card = page.locator('#documents .card').first();
    await expect.poll(async () => (await seqsOf(card)).length, PAGE_WAIT).toBeGreaterThanOrEqual(50);
    expect(await card.getAttribute('data-status')).toBe('PROCESSING');

    const before = (await shownStatuses(page)).length;
    cluster.apis[0].kill('SIGKILL');
    await expect.poll(async () => (await shownStatuses(page)).slice(before), PAGE_WAIT).toContain('reconnecting');
    await cluster.restartApi(0);
    await page.locator('#documents .card[data-status=COMPLETED]').waitFor(PAGE_WAIT);
    await page.locator('#connection[data-status=connected]').waitFor(PAGE_WAIT);
    expect((await shownStatuses(page)).slice(before), 'the statuses shown since the kill').toEqual(
      expect.arrayContaining(['closed', 'reconnecting', 'connected']),
    );

    const seqs = await seqsOf(card);
    expect(seqs.length).toBeGreaterThan(50);
    expect(seqs).toEqual(oneToN(seqs.length));
    expect(await card.locator('progress').evaluate((bar: HTMLProgressElement) => bar.value)).toBe(100);
    expect(errors).toEqual([]);
    expect(outside, 'requests for beyond loopback').toEqual([]);
    await page.close();
  });
});

describe('in dev mode', () => {
  let devToken: string;
  let devUrl: string;
  let stopDev: () => Promise<void>;

  beforeAll(async () => {
    const config = loadConfig(
      { REDIS_URL: redisUrl(), JWT_SECRET: TEST_SECRET, KEY_PREFIX: uniquePrefix(), PORT: '0', LOG_LEVEL: 'silent' },
      { mode: 'dev' },
    );
    devToken = await api.token({ sub: 'dev-user', roles: ['admin'] });
    const app = buildApp(config, { logger: createLogger('silent', 'test'), devToken });
    devUrl = (await app.start()).url;
    stopDev = () => app.stop();
  });
  afterAll(() => stopDev?.());

  it('signs in with the token dev mode puts in the page, needing nothing from outside', async () => {
    const { page, errors, outside } = await openPage(`${devUrl}/`);
    await page.locator('#connection[data-status=connected]').waitFor(PAGE_WAIT);
    expect(await page.getByLabel('Access token').inputValue()).toBe(devToken);
    await expect.poll(() => page.textContent('#viewer'), PAGE_WAIT).toBe('Signed in as dev-user');
    expect(errors).toEqual([]);
    expect(outside, 'requests for beyond loopback').toEqual([]);
    await page.close();
  });

  it('serves GraphiQL whole from Herald: it runs a query with the dev token, needing nothing from outside', async () => {
    const { page, errors, outside } = await openPage(`${devUrl}/graphql?query=${encodeURIComponent('{ me { id } }')}`);
    const editor = page.locator('.graphiql-query-editor .monaco-editor');
    await editor.waitFor({ state: 'visible', ...GRAPHIQL_WAIT });
    await expect.poll(() => editor.textContent(), PAGE_WAIT).toContain('me');
    const isMeQuery = (request: Request) =>
      request.method() === 'POST' && /\bme\s*\{/.test(String(request.postDataJSON()?.query));
    const sent = page.waitForRequest(isMeQuery, PAGE_WAIT);
    await page.getByRole('button', { name: /execute query/i }).click();
    expect((await sent).headers().authorization).toBe(`Bearer ${devToken}`);
    await expect.poll(() => page.locator('.graphiql-response').textContent(), PAGE_WAIT).toMatch(/"id":\s*"dev-user"/);
    expect(errors).toEqual([]);
    expect(outside, 'requests for beyond loopback').toEqual([]);
    await page.close();
  }, 120_000);
});

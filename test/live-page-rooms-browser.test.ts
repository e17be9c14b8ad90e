import { print } from 'graphql';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { FileProgressDocument } from '../src/client/generated.js';
import { launchChromium, PAGE_WAIT, signedInPage } from './helpers/browser.js';
import { startHerald, type Herald } from './helpers/herald.js';

let h: Herald;
let browser: Browser;

beforeAll(async () => {
  [h, browser] = await Promise.all([startHerald(), launchChromium()]);
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await h?.stop();
});

/** The live page, signed in as `token`'s user. */
function signIn(token: string): Promise<Page> {
  return signedInPage(browser, h.url, token);
}

it("lists the viewer's jobs with their final state, and who else watches the file the page follows", async () => {
  const [jo, ada] = await Promise.all([
    h.token({ sub: 'jo', projects: ['apollo'] }),
    h.token({ sub: 'ada', projects: ['apollo'] }),
  ]);
  await h.stopWorkers(); // the file waits, so others can join while the page follows it
  const page = await signIn(jo);
  expect(await page.locator('#jobs-empty').isVisible()).toBe(true);

  await page.fill('#document-text', 'A cache keeps hot data close. What is a cache?');
  await page.fill('#document-project', 'apollo');
  await page.getByRole('button', { name: 'Process' }).click();
  const card = page.locator('#documents .card[data-file-id]');
  await card.waitFor(PAGE_WAIT);
  const fileId = (await card.getAttribute('data-file-id'))!;
  const watchers = () => page.locator('#watchers li').allTextContents();
  await expect.poll(watchers, PAGE_WAIT).toEqual(['jo']);
  expect(await page.locator('#presence').getAttribute('data-resource-id')).toBe(fileId);
  const projectWatchers = () => page.locator('#project-watchers li').allTextContents();
  await expect.poll(projectWatchers, PAGE_WAIT).toEqual(['jo']);
  expect(await page.locator('#presence-project-id').textContent()).toBe('apollo');
  const job = page.locator(`#job-list li[data-job-id="${fileId}"]`);
  await expect.poll(() => job.locator('.state').textContent(), PAGE_WAIT).toBe('WAITING');
  expect(await job.locator('.kind').textContent()).toBe('Document');
  expect(await job.locator('.retry').isHidden()).toBe(true);

  // ada, a member of the file's project, watches it from elsewhere, then stops.
  const stop = h
    .ws(ada)
    .subscribe(
      { query: print(FileProgressDocument), variables: { fileId } },
      { next: () => undefined, error: () => undefined, complete: () => undefined },
    );
  await expect.poll(async () => (await watchers()).sort(), PAGE_WAIT).toEqual(['ada', 'jo']);
  expect((await projectWatchers()).sort()).toEqual(['ada', 'jo']);
  stop();
  await expect.poll(watchers, PAGE_WAIT).toEqual(['jo']);
  await expect.poll(projectWatchers, PAGE_WAIT).toEqual(['jo']);

  // Processed: the card's new status refreshes the list at once, not at the next timer.
  await h.startWorkers();
  await page.locator('#documents .card[data-status=COMPLETED]').waitFor(PAGE_WAIT);
  await expect.poll(() => job.getAttribute('data-state'), { timeout: 5_000 }).toBe('COMPLETED');
  expect(await job.locator('progress').evaluate((bar: { value: number }) => bar.value)).toBe(100);
  await expect.poll(watchers, PAGE_WAIT).toEqual([]);
  expect(await page.locator('#error').textContent()).toBe('');
}, 60_000);

import { chromium, type Browser, type Page } from 'playwright-core';

/** How long a page may take to show what a test waits for: a job on a busy two-core machine, and the page's own refreshes. */
export const PAGE_WAIT = { timeout: 20_000 };

/**
 * Debian's Chromium (`.ci/run` installs it). Names that are not loopback resolve to nothing, so no
 * request can leave the machine even where routing does not see it.
 */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1'],
  });
}

/** A new tab on the live page at `url`, signed in with `token` through its form; resolves once it says who is signed in. */
export async function signedInPage(browser: Browser, url: string, token: string, wait = PAGE_WAIT): Promise<Page> {
  const page = await browser.newPage();
  await page.goto(url);
  await page.fill('#token', token);
  await page.click('#sign-in button');
  await page.locator('#viewer').getByText('Signed in as').waitFor(wait);
  return page;
}

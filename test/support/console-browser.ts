import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

/** Debian's Chromium (apt-get install chromium; .ci/run installs it), or CHROMIUM_PATH. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/**
 * Headless Chromium for the console's end-to-end tests. Playwright gives each launch a fresh
 * profile directory (--user-data-dir); without the background-networking flags Chromium
 * stalls on a machine without internet, reaching for updates and sync.
 */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

/** A browser of one person: its own cookies and storage, in Beijing's time zone, with every URL it asked for. */
export async function personOf(browser: Browser, base: string): Promise<{ context: BrowserContext; page: Page; urls: string[] }> {
  const context = await browser.newContext({ locale: 'zh-CN', timezoneId: 'Asia/Shanghai', viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const urls: string[] = [];
  page.on('request', (r) => void urls.push(r.url()));
  await page.goto(`${base}/console/`);
  return { context, page, urls };
}

/** Signs in with a token through the console's form; resolves once the navigation shows. */
export async function signIn(page: Page, token: string): Promise<void> {
  await page.fill('input[name=token]', token);
  await page.click('form.sign-in button[type=submit]');
  await page.waitForSelector('nav a');
}

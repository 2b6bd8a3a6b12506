/**
 * Headless Chromium for the web view's page tests (puppeteer-core drives Debian's
 * chromium, which scripts/bootstrap.sh installs).
 */
import { execFileSync } from 'node:child_process';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';

/** The Chromium binary: CHROMIUM_PATH, else the first of chromium, chromium-browser, google-chrome on the PATH. */
export function chromiumPath(): string {
  for (const name of [process.env.CHROMIUM_PATH, 'chromium', 'chromium-browser', 'google-chrome']) {
    if (name === undefined || name === '') continue;
    try {
      return execFileSync('sh', ['-c', `command -v "${name}"`], { encoding: 'utf8' }).trim();
    } catch {
      // next
    }
  }
  throw new Error('no Chromium found (chromium, chromium-browser, google-chrome or CHROMIUM_PATH): scripts/bootstrap.sh installs Debian\'s chromium');
}

/** A headless Chromium the tests can run in a container or as root. */
export async function launchChromium(): Promise<Browser> {
  return await puppeteer.launch({ executablePath: chromiumPath(), headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
}

/** An expression evaluated in the page (the project's types have no DOM: the page's code is JavaScript). */
export async function js(page: Page, expression: string): Promise<unknown> {
  return await page.evaluate<[], () => unknown>(expression);
}

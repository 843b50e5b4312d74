// The browser half of `vo-bench --only browser` (bench/src/browser.rs starts
// it): Playwright driving Debian's Chromium, told what to do by JSON lines on
// stdin, answering with one JSON line on stdout per command. It opens tabs,
// puts one to sleep and wakes it; the Rust side starts the nodes, counts their
// streams and publishes the announcements.
//
// Times are the page's own: `performance.timeOrigin + performance.now()`,
// milliseconds on the machine's wall clock (CLOCK_REALTIME, which the Rust side
// reads too), in steps of 0.1 ms (Chromium's resolution for a page that is not
// cross-origin isolated). A script injected before the page's own code
// stamps the moment the banner element enters the DOM (a MutationObserver)
// and the moment the `online` event arrives.
//
// Commands (one reply each, `{"error": ...}` if it failed):
//   {"cmd":"tabs","url":U,"tabs":N,"contexts":C}  N tabs spread over C browser
//        contexts (one context = one browser profile), each loaded and its
//        stream connected, or given up on after LOAD_MS -> {"connected":K}
//        (the K tabs that made it take part in what follows)
//   {"cmd":"banners","version":V,"timeout_ms":T}  waits for every tab's banner
//        of V, then closes the tabs -> {"banner_ms":[...],"missing":M}
//   {"cmd":"sleep","url":U,"offline":B}  one tab, connected, then hidden (and
//        offline if B) -> {"asleep":true}
//   {"cmd":"wake","version":V,"path":"visible"|"online","away_ms":A,"timeout_ms":T}
//        wakes the sleeping tab by that path -> {"wake_ms":W,"early":E}
//        (E: the banner was there before the wake-up, so it did not sleep)
import { chromium } from '@playwright/test';
import * as readline from 'node:readline';
import chromiumLaunch from '../chromium.cjs';

// As the Playwright tests launch it.
const browser = await chromium.launch({ ...chromiumLaunch, headless: true });

/** Runs in every page before its own scripts. */
function stamps() {
  const now = performance.now.bind(performance);
  const wall = () => performance.timeOrigin + now();
  // The page reads `performance.now()` to tell how long it was hidden;
  // `away(ms)` makes that much time seem to have passed (the stamps above
  // keep the real clock).
  let skew = 0;
  performance.now = () => now() + skew;
  const bench = { banner: null, online: null, wall, away: (ms) => { skew += ms; } };
  window.__voBench = bench;
  addEventListener('online', () => { bench.online ??= wall(); }, true);
  new MutationObserver(() => {
    if (bench.banner === null && document.querySelector('[data-testid="version-banner"]')) {
      bench.banner = wall();
    }
  }).observe(document, { childList: true, subtree: true });
}

/** Polls `check` until it returns a value other than undefined, or throws after `timeoutMs`. */
async function until(what, timeoutMs, check) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** How long a tab may take to load, and then to connect its stream. */
const LOAD_MS = 15_000;
let contexts = [];
let pages = [];

async function closeAll() {
  await Promise.all(contexts.map((c) => c.close()));
  contexts = [];
  pages = [];
}

/** Whether the page loads and its stream connects, each within LOAD_MS. */
async function connects(page, url) {
  try {
    await page.goto(url, { timeout: LOAD_MS });
    await until('the stream to connect', LOAD_MS, async () =>
      (await page.getByTestId('stream-status').textContent().catch(() => null)) === 'connected' ? true : undefined,
    );
    return true;
  } catch {
    return false;
  }
}

/** Opens `count` tabs in a new context; keeps those that connect, returns how many. */
async function open(url, count) {
  const context = await browser.newContext();
  await context.addInitScript(stamps);
  contexts.push(context);
  let connected = 0;
  for (let i = 0; i < count; i++) {
    const page = await context.newPage();
    if (await connects(page, url)) {
      pages.push(page);
      connected += 1;
    }
  }
  return connected;
}

/** The page's banner stamp once its banner shows `version`. */
const bannerOf = (page, version) =>
  page.evaluate((v) => {
    const el = document.querySelector('[data-testid="version-banner"]');
    return el?.textContent.includes(v) ? window.__voBench.banner : undefined;
  }, version);

const commands = {
  async tabs({ url, tabs, contexts: n }) {
    await closeAll();
    let connected = 0;
    for (let c = 0; c < n; c++) {
      connected += await open(url, Math.floor(tabs / n) + (c < tabs % n ? 1 : 0));
    }
    return { connected };
  },

  async banners({ version, timeout_ms }) {
    const deadline = Date.now() + timeout_ms;
    const banner_ms = [];
    let missing = 0;
    for (const page of pages) {
      const at = await until('a banner', Math.max(0, deadline - Date.now()), () => bannerOf(page, version)).catch(() => null);
      if (at === null) missing += 1;
      else banner_ms.push(at);
    }
    await closeAll();
    return { banner_ms, missing };
  },

  async sleep({ url, offline }) {
    await closeAll();
    if ((await open(url, 1)) !== 1) throw new Error(`the tab did not connect within ${LOAD_MS} ms`);
    const [page] = pages;
    // As the specs make a page believe it is hidden (a minimised window).
    await page.evaluate(() => {
      Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
      document.dispatchEvent(new Event('visibilitychange'));
    });
    if (offline) await contexts[0].setOffline(true);
    return { asleep: true };
  },

  async wake({ version, path, away_ms, timeout_ms }) {
    const [context] = contexts;
    const [page] = pages;
    const early = (await page.evaluate(() => window.__voBench.banner)) !== null;
    let woke;
    if (path === 'online') {
      await context.setOffline(false);
      woke = await until('the online event', timeout_ms, () => page.evaluate(() => window.__voBench.online ?? undefined));
    } else {
      woke = await page.evaluate((away) => {
        window.__voBench.away(away);
        delete document.hidden;
        delete document.visibilityState;
        const at = window.__voBench.wall();
        document.dispatchEvent(new Event('visibilitychange'));
        return at;
      }, away_ms);
    }
    const banner = await until(`the banner of ${version}`, timeout_ms, () => bannerOf(page, version));
    await closeAll();
    return { wake_ms: banner - woke, early };
  },
};

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  const command = JSON.parse(line);
  let reply;
  try {
    reply = await commands[command.cmd](command);
  } catch (e) {
    reply = { error: String(e?.stack ?? e) };
  }
  process.stdout.write(`${JSON.stringify(reply)}\n`);
}
await browser.close();

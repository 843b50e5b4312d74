// The browser side users ask for: the reload strategies (when-hidden,
// immediate with a cancellable countdown), the unsaved-input guard, the
// loop guard, one stream per browser, and the banner's accessibility and
// replaceable texts. The reference page picks its strategy from its query
// (`?reload=...&countdown=...&lang=de`), so one build tries them all.
import { expect, Page, test } from '@playwright/test';
import { freePort, Node, waitFor } from './support/node';

/** Makes the page believe it was hidden (a tab switch, a minimised window). */
async function hide(page: Page) {
  await page.evaluate(() => {
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
    document.dispatchEvent(new Event('visibilitychange', { bubbles: true }));
  });
}

/** Counts the page's document requests (the first load included). */
function countLoads(page: Page): { n: number } {
  const loads = { n: 0 };
  page.on('request', (r) => {
    if (r.resourceType() === 'document' && r.frame() === page.mainFrame()) loads.n += 1;
  });
  return loads;
}

/** Redeploys a single node on its port as `version`. */
async function redeploy(node: Node, version: string, extraArgs: string[] = []): Promise<Node> {
  await node.stop();
  const next = new Node({ port: node.opts.port, version, extraArgs });
  await next.start();
  return next;
}

/** One sample of the node's metrics (its admin listener), `missing` if absent. */
async function metric(adminPort: number, sample: string, missing?: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  if (line) return Number(line.split(' ')[1]);
  if (missing !== undefined) return missing;
  throw new Error(`no ${sample} in:\n${text}`);
}

/** The node's open version streams. */
const openStreams = (adminPort: number) => metric(adminPort, 'version_observer_streams');

test.describe('reload strategies', () => {
  let node: Node | undefined;

  test.afterEach(async () => {
    await node?.stop();
    node = undefined;
  });

  test('when-hidden: the banner asks while the tab is visible; hiding it reloads onto the new version', async ({ page }) => {
    node = new Node({ port: await freePort(), version: '1.0.0' });
    await node.start();
    const loads = countLoads(page);
    await page.goto(`${node.url}/?reload=when-hidden`);
    await expect(page.getByTestId('stream-status')).toHaveText('connected');
    await page.getByTestId('notes').fill('kept across the reload');

    node = await redeploy(node, '2.0.0');
    const banner = page.getByTestId('version-banner');
    await expect(banner).toHaveAttribute('data-state', 'prompt');
    await expect(page.getByTestId('page-version')).toHaveText('1.0.0');
    expect(loads.n).toBe(1);

    await hide(page);
    await expect(page.getByTestId('page-version')).toHaveText('2.0.0');
    await expect(page.getByTestId('version-banner')).toHaveCount(0);
    // The kept notes came along; the kept field never held the reload back.
    await expect(page.getByTestId('notes')).toHaveValue('kept across the reload');
  });

  test('unsaved input holds an automatic reload back until it is sent', async ({ page }) => {
    node = new Node({ port: await freePort(), version: '1.0.0' });
    await node.start();
    await page.goto(`${node.url}/?reload=when-hidden`);
    await expect(page.getByTestId('stream-status')).toHaveText('connected');
    await page.getByTestId('draft').fill('half-written message');

    node = await redeploy(node, '2.0.0');
    const banner = page.getByTestId('version-banner');
    await expect(banner).toHaveAttribute('data-state', 'prompt');
    await hide(page);
    // The decision is made, and it is to wait: the banner says why.
    await expect(banner).toHaveAttribute('data-state', 'unsaved');
    await expect(banner).toContainText('Save your changes, then reload.');
    await expect(page.getByTestId('draft')).toHaveValue('half-written message');
    await expect(page.getByTestId('page-version')).toHaveText('1.0.0');

    // Sending the form saves the input: the hidden tab reloads now.
    await page.getByTestId('draft-form').evaluate((form: HTMLFormElement) => form.requestSubmit());
    await expect(page.getByTestId('page-version')).toHaveText('2.0.0');
  });

  test('immediate: a visible countdown reloads by itself; Cancel stops it and the banner asks', async ({ page }) => {
    node = new Node({ port: await freePort(), version: '1.0.0' });
    await node.start();
    await page.goto(`${node.url}/?reload=immediate&countdown=30`);
    await expect(page.getByTestId('stream-status')).toHaveText('connected');

    node = await redeploy(node, '2.0.0');
    const banner = page.getByTestId('version-banner');
    await expect(banner).toHaveAttribute('data-state', 'countdown');
    await expect(page.getByTestId('version-countdown')).toHaveText(/Reloading in \d+ s\./);
    await banner.getByRole('button', { name: 'Cancel' }).click();
    await expect(banner).toHaveAttribute('data-state', 'cancelled');
    await expect(page.getByTestId('version-countdown')).toHaveCount(0);
    await expect(page.getByTestId('page-version')).toHaveText('1.0.0');

    // Without Cancel, it counts down and reloads.
    await page.goto(`${node.url}/?reload=immediate&countdown=2`);
    await expect(page.getByTestId('page-version')).toHaveText('2.0.0');
    node = await redeploy(node, '3.0.0');
    await expect(page.getByTestId('version-countdown')).toHaveText(/Reloading in [12] s\./);
    await expect(page.getByTestId('page-version')).toHaveText('3.0.0');
  });

  test('the loop guard: reloads that keep landing on the old version stop after two, and the banner says so', async ({ page, context }) => {
    node = new Node({ port: await freePort(), version: '1.0.0' });
    await node.start();
    // Stand-in for a load balancer that keeps sending this tab to an old
    // node: every stream tells the 1.0.0 page that 9.0.0 was announced, and
    // every reload lands on 1.0.0 again.
    const report = await (await fetch(`${node.url}/api/version`)).json();
    report.cluster.settled_version = '9.0.0';
    report.cluster.announced_version = '9.0.0';
    await context.route('**/api/version/events*', (route) =>
      route.fulfill({
        status: 200,
        headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' },
        body: `retry: 600000\ndata: ${JSON.stringify(report)}\n\n`,
      }),
    );
    const loads = countLoads(page);
    await page.goto(`${node.url}/?reload=immediate&countdown=0`);
    const banner = page.getByTestId('version-banner');
    await expect(banner).toHaveAttribute('data-state', 'reload-failed');
    await expect(banner).toContainText('Reloading did not reach the new version yet');
    await expect(page.getByTestId('page-version')).toHaveText('1.0.0');
    // The first load and two automatic reloads, no more.
    expect(loads.n).toBe(3);
    // The user can still ask for one; it lands on the old version again,
    // and nothing reloads by itself after it.
    await banner.getByRole('button', { name: 'Reload' }).click();
    await waitFor('the reload the user asked for', async () => loads.n === 4);
    await expect(page.getByTestId('version-banner')).toHaveAttribute('data-state', 'reload-failed');
    expect(loads.n).toBe(4);
  });

  test('monotonic: a stream that reconnects to a node that has not heard of the announcement does not take the banner back', async ({ page, context }) => {
    node = new Node({ port: await freePort(), version: '1.0.0' });
    await node.start();
    // Stand-in for two nodes: the first stream reaches one that has read
    // record 7 (2.0.0 announced), the next one a node still at record 3.
    const report = await (await fetch(`${node.url}/api/version`)).json();
    const knows = structuredClone(report);
    knows.cluster = { ...knows.cluster, state: 'settled', settled_version: '2.0.0', announced_version: '2.0.0', announced_revision: 7 };
    const behind = structuredClone(report);
    behind.cluster = { ...behind.cluster, state: 'mixed', settled_version: null, announced_version: '1.0.0', announced_revision: 3 };
    let streams = 0;
    await context.route('**/api/version/events*', (route) => {
      streams += 1;
      const next = streams === 1 ? knows : behind;
      return route.fulfill({
        status: 200,
        headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' },
        body: `retry: 200\ndata: ${JSON.stringify(next)}\n\n`,
      });
    });
    await page.goto(node.url);
    const banner = page.getByTestId('version-banner');
    await expect(banner).toContainText('2.0.0');
    // The second node's report has arrived (the state comes from it)...
    await expect(page.getByTestId('cluster-state')).toContainText('mixed versions');
    // ...and the page keeps the newer announcement.
    await expect(page.getByTestId('cluster-state')).toContainText('announced 2.0.0');
    await expect(banner).toContainText('2.0.0');
  });

  test('one stream per browser: five tabs share one stream; closing its holder hands it on and every tab still hears', async ({ context }) => {
    const adminPort = await freePort();
    const port = await freePort();
    const admin = ['--admin-listen', `127.0.0.1:${adminPort}`];
    node = new Node({ port, version: '1.0.0', extraArgs: admin });
    await node.start();
    const tabs: Page[] = [];
    for (let i = 0; i < 5; i++) {
      const tab = await context.newPage();
      await tab.goto(node.url);
      await expect(tab.getByTestId('stream-status')).toHaveText('connected');
      tabs.push(tab);
    }
    await waitFor('one open stream for five tabs', async () => (await openStreams(adminPort)) === 1);

    // The first tab holds the stream; closing it hands the stream on.
    await tabs.shift()!.close();
    await waitFor('one open stream after the holder closed', async () => (await openStreams(adminPort)) === 1);

    node = await redeploy(node, '2.0.0', admin);
    for (const tab of tabs) {
      await expect(tab.getByTestId('version-banner')).toContainText('2.0.0');
    }
    await waitFor('one open stream after the redeploy', async () => (await openStreams(adminPort)) === 1);
  });

  test('a holder that the browser freezes lets the stream go to another tab, and rejoins when it resumes', async ({ context }) => {
    // Headless Chromium does not freeze a visible page (CDP's
    // Page.setWebLifecycleState is a no-op there), so the test sends the
    // lifecycle events the browser would send; which tab holds the stream is
    // read from the node's metrics (open streams by page version).
    const adminPort = await freePort();
    const admin = ['--admin-listen', `127.0.0.1:${adminPort}`];
    node = new Node({ port: await freePort(), version: '1.0.0', extraArgs: admin });
    await node.start();
    const first = await context.newPage();
    await first.goto(node.url);
    await expect(first.getByTestId('stream-status')).toHaveText('connected');
    node = await redeploy(node, '1.1.0', admin);
    const second = await context.newPage();
    await second.goto(node.url);
    await expect(second.getByTestId('page-version')).toHaveText('1.1.0');
    const tabs = (page: string) => metric(adminPort, `version_observer_tabs{page_version="${page}"}`, 0);
    await waitFor('the first tab holding the stream', async () => (await tabs('1.0.0')) === 1 && (await tabs('1.1.0')) === 0);

    await first.evaluate(() => document.dispatchEvent(new Event('freeze')));
    await waitFor('the second tab holding the stream', async () => (await tabs('1.0.0')) === 0 && (await tabs('1.1.0')) === 1);
    await first.evaluate(() => document.dispatchEvent(new Event('resume')));

    node = await redeploy(node, '2.0.0', admin);
    await expect(second.getByTestId('version-banner')).toContainText('2.0.0');
    await expect(first.getByTestId('version-banner')).toContainText('2.0.0');
    await waitFor('still one stream', async () => (await openStreams(adminPort)) === 1);
  });

  test('a required release: the banner says so, links its notes, and immediate-required counts down to the reload', async ({ page }) => {
    node = new Node({ port: await freePort(), version: '1.0.0' });
    await node.start();
    await page.goto(`${node.url}/?reload=immediate-required&countdown=2`);
    await expect(page.getByTestId('stream-status')).toHaveText('connected');

    node = await redeploy(node, '2.0.0', [
      '--release-severity', 'required',
      '--release-notes-url', '/releases/2.0.0',
    ]);
    const banner = page.getByTestId('version-banner');
    await expect(banner).toContainText('A new version, 2.0.0, is required.');
    await expect(banner).toHaveAttribute('data-required', '');
    await expect(page.getByTestId('version-notes')).toHaveAttribute('href', '/releases/2.0.0');
    await expect(page.getByTestId('version-notes')).toHaveText("What's new");
    await expect(page.getByTestId('version-countdown')).toHaveText(/Reloading in [12] s\./);
    await expect(page.getByTestId('page-version')).toHaveText('2.0.0');
  });

  test('an optional release asks; a page older than the minimum supported version gets the required treatment', async ({ context }) => {
    const port = await freePort();
    const query = '/?reload=immediate-required&countdown=600';
    node = new Node({ port, version: '1.4.0' });
    await node.start();
    const old = await context.newPage();
    await old.goto(node.url + query);
    await expect(old.getByTestId('stream-status')).toHaveText('connected');
    node = await redeploy(node, '1.6.0');
    const newer = await context.newPage();
    await newer.goto(node.url + query);
    await expect(newer.getByTestId('page-version')).toHaveText('1.6.0');
    await expect(old.getByTestId('cluster-state')).toContainText('settled on 1.6.0');

    node = await redeploy(node, '2.0.0', ['--min-supported-version', '1.5.0']);
    const oldBanner = old.getByTestId('version-banner');
    await expect(oldBanner).toContainText('2.0.0, is required.');
    await expect(oldBanner).toHaveAttribute('data-state', 'countdown');
    const newerBanner = newer.getByTestId('version-banner');
    await expect(newerBanner).toContainText('2.0.0, is available.');
    await expect(newerBanner).toHaveAttribute('data-state', 'prompt');
    await expect(newerBanner).not.toHaveAttribute('data-required');
    await expect(newer.getByTestId('version-countdown')).toHaveCount(0);
  });

  test('the banner is polite, keyboard-usable, and speaks the texts it is given', async ({ page }) => {
    node = new Node({ port: await freePort(), version: '1.0.0' });
    await node.start();
    await page.emulateMedia({ reducedMotion: 'reduce' });
    await page.goto(`${node.url}/?lang=de`);
    await expect(page.getByTestId('stream-status')).toHaveText('connected');
    const draft = page.getByTestId('draft');
    await draft.focus();

    node = await redeploy(node, '2.0.0');
    const banner = page.getByTestId('version-banner');
    await expect(banner).toContainText('Eine neue Version, 2.0.0, ist verfügbar.');
    await expect(banner).toHaveAttribute('role', 'status');
    await expect(banner).toHaveAttribute('aria-live', 'polite');
    // It did not take the focus from what the user was doing, and nothing moves.
    await expect(draft).toBeFocused();
    expect(await page.evaluate(() => document.getAnimations().length)).toBe(0);
    // Its button is reachable by keyboard and works with Enter.
    const reload = banner.getByRole('button', { name: 'Neu laden' });
    await reload.focus();
    await expect(reload).toBeFocused();
    await page.keyboard.press('Enter');
    await expect(page.getByTestId('page-version')).toHaveText('2.0.0');
  });
});

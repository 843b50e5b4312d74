// The scene teams judge the product by: a tab stays open on the load balancer
// (nginx) while the cluster behind it is deployed node by node.
import { expect, Page, test } from '@playwright/test';
import { Lab, recorded } from './support/lab';

/** Fails if the banner shows at any moment during `ms` (sampled every 100 ms). */
async function noBannerFor(page: Page, ms: number, context: string) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    expect(await page.getByTestId('version-banner').count(), `banner shown while ${context}`).toBe(0);
    await page.waitForTimeout(100); // sampling a window, not waiting for a condition
  }
}

/** Marks the document, so a later check can tell it was never reloaded. */
async function markDocument(page: Page) {
  await page.evaluate(() => ((window as any).__voMark = 'still the same document'));
}

async function expectSameDocument(page: Page) {
  expect(await page.evaluate(() => (window as any).__voMark)).toBe('still the same document');
}

test.describe('rolling deploy behind nginx', () => {
  let lab: Lab;

  test.beforeEach(async () => {
    lab = await Lab.start(3);
  });

  test.afterEach(async ({}, testInfo) => {
    if (testInfo.status !== testInfo.expectedStatus) {
      for (const id of ['n1', 'n2', 'n3']) {
        const logs = await lab.logs(id).catch(() => '');
        if (logs) await testInfo.attach(`${id}.log`, { body: logs, contentType: 'text/plain' });
      }
      await testInfo.attach('lab-status.json', {
        body: JSON.stringify(await lab.status().catch(() => null), null, 2),
        contentType: 'application/json',
      });
    }
    await lab.stop();
  });

  /** Steps 1 and 2: n1 on 0.1.0 with a tab open, then n2 and n3 on 1.0.0. */
  async function openTabThenMix(page: Page) {
    await lab.startNode('n1', '0.1.0');
    await lab.until('the baseline 0.1.0', (s) => recorded(s)?.join() === '0.1.0,baseline' && s.view?.state === 'settled');
    await page.goto(lab.proxy);
    await expect(page.getByTestId('page-version')).toHaveText('0.1.0');
    await expect(page.getByTestId('stream-status')).toHaveText('connected');
    await expect(page.getByTestId('version-banner')).toHaveCount(0);
    await markDocument(page);

    await lab.startNode('n2', '1.0.0');
    await lab.startNode('n3', '1.0.0');
    await lab.until('a mixed cluster of 3', (s) => s.view?.state === 'mixed' && s.view.members.length === 3);
    // The tab hears that a deploy is in progress...
    await expect(page.getByTestId('cluster-state')).toContainText('mixed');
    // ...and stays quiet for longer than a node timeout.
    await noBannerFor(page, lab.timings.nodeTimeoutMs * 2 + 1_000, 'the versions are mixed');
    expect(await lab.announcements()).toEqual([]);
  }

  test('the banner waits until the old node has stopped, then appears once; Reload brings 1.0.0', async ({ page }) => {
    await openTabThenMix(page);

    await lab.stopNode('n1');
    const banner = page.getByTestId('version-banner');
    await expect(banner).toContainText('1.0.0', { timeout: 10_000 });
    await expect(banner.getByRole('button', { name: 'Reload' })).toBeVisible();
    await expectSameDocument(page);
    expect((await lab.announcements()).map((a) => a.version)).toEqual(['1.0.0']);

    await banner.getByRole('button', { name: 'Reload' }).click();
    await expect(page.getByTestId('page-version')).toHaveText('1.0.0');
    await expect(page.getByTestId('stream-status')).toHaveText('connected');
    await expect(page.getByTestId('version-banner')).toHaveCount(0);
  });

  test('a crashed old node (kill -9) still brings the banner, and the tab reconnects by itself', async ({ page }) => {
    await openTabThenMix(page);
    // The tab's stream was opened while n1 was the only node, so n1 serves it.
    const killedAt = Date.now();
    await lab.killNode('n1');
    await expect(page.getByTestId('stream-status')).toHaveText('connecting');

    // n1 was also the monitor: the banner needs its expiry (node timeout) and
    // its lease to lapse, then one round.
    const bound = Math.max(lab.timings.nodeTimeoutMs, lab.timings.leaseMs) + 5_000;
    await expect(page.getByTestId('version-banner')).toContainText('1.0.0', { timeout: bound });
    expect(Date.now() - killedAt).toBeGreaterThanOrEqual(lab.timings.nodeTimeoutMs);
    await expect(page.getByTestId('stream-status')).toHaveText('connected');
    await expectSameDocument(page);
    expect((await lab.announcements()).map((a) => a.version)).toEqual(['1.0.0']);
  });

  test('a tab whose stream gave up (every node down) reconnects at once when the browser is back online', async ({ page }) => {
    await lab.startNode('n1', '0.1.0');
    await lab.until('the baseline 0.1.0', (s) => recorded(s)?.join() === '0.1.0,baseline' && s.view?.state === 'settled');
    await page.goto(lab.proxy);
    await expect(page.getByTestId('stream-status')).toHaveText('connected');
    await markDocument(page);
    // Every node down: nginx answers 502, so the tab backs off (1, 2, 4, 8 s...).
    await lab.stopNode('n1');
    await expect(page.getByTestId('stream-status')).toHaveText('connecting');
    await page.waitForTimeout(12_000); // a window for the backoff to grow past 8 s, not a wait for a condition
    await lab.startNode('n2', '1.0.0');
    await lab.until('1.0.0 announced', (s) => recorded(s)?.join() === '1.0.0,announcement');
    // The laptop is back online: the tab reopens its stream now, not after its backoff.
    await page.evaluate(() => window.dispatchEvent(new Event('online')));
    await expect(page.getByTestId('version-banner')).toContainText('1.0.0', { timeout: 2_000 });
    await expectSameDocument(page);
  });

  test('a minor deploy (1.0.0 to 1.1.0) settles without an announcement or a banner', async ({ page }) => {
    for (const id of ['n1', 'n2', 'n3']) await lab.startNode(id, '1.0.0');
    await lab.until('the baseline 1.0.0', (s) => recorded(s)?.join() === '1.0.0,baseline');
    await page.goto(lab.proxy);
    await expect(page.getByTestId('page-version')).toHaveText('1.0.0');
    await expect(page.getByTestId('stream-status')).toHaveText('connected');
    await markDocument(page);

    for (const id of ['n1', 'n2', 'n3']) {
      await lab.stopNode(id);
      await lab.startNode(id, '1.1.0');
    }
    await lab.until('every node on 1.1.0, settled', (s) => s.view?.state === 'settled' && s.view.settled_version === '1.1.0');
    // The tab has heard the cluster settle on 1.1.0 (so a banner would be due by now)...
    await expect(page.getByTestId('cluster-state')).toContainText('settled on 1.1.0');
    // ...and nothing was announced: the record is still the 1.0.0 baseline.
    await noBannerFor(page, 2_000, 'the cluster runs a compatible version');
    expect(await lab.announcements()).toEqual([]);
    expect(recorded(await lab.status())).toEqual(['1.0.0', 'baseline']);
    await expectSameDocument(page);
  });

  test('a tab from an old node whose stream connects only after the announcement sees the banner at once', async ({ page }) => {
    await lab.startNode('n1', '0.1.0');
    await lab.until('the baseline 0.1.0', (s) => recorded(s)?.join() === '0.1.0,baseline');
    await lab.startNode('n2', '1.0.0');
    await lab.startNode('n3', '1.0.0');
    await lab.until('a mixed cluster of 3', (s) => s.view?.state === 'mixed' && s.view.members.length === 3);

    // Hold the tab's event stream back until the cluster has announced.
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let held = 0;
    const asked: string[] = [];
    // (The tab names its page's version in the query: `?page=0.1.0`.)
    await page.route((url) => url.pathname === '/api/version/events', async (route) => {
      held += 1;
      asked.push(new URL(route.request().url()).search);
      await released;
      // A request from an earlier load of the page was cancelled meanwhile.
      await route.continue().catch(() => {});
    });
    // Round robin: load until the page comes from the old node.
    for (let attempt = 0; attempt < 10; attempt++) {
      await page.goto(lab.proxy);
      if ((await page.getByTestId('page-version').textContent()) === '0.1.0') break;
    }
    await expect(page.getByTestId('page-version')).toHaveText('0.1.0');
    await expect.poll(() => held, { message: 'the hydrated page asks for its stream' }).toBeGreaterThan(0);
    expect(asked).toContain('?page=0.1.0');
    await expect(page.getByTestId('stream-status')).toHaveText('connecting');

    await lab.stopNode('n1');
    await lab.until('the announcement of 1.0.0', (s) => s.announcements.some((a) => a.version === '1.0.0'));
    await expect(page.getByTestId('version-banner')).toHaveCount(0);

    release();
    // The first event of the stream carries the announced version: no wait for a change.
    await expect(page.getByTestId('version-banner')).toContainText('1.0.0', { timeout: 3_000 });
    await expect(page.getByTestId('page-version')).toHaveText('0.1.0');
  });
});

// The operators' fleet view (`/fleet` on a node's admin listener), live
// through a rolling deploy: members, the rollout bar, open tabs per page
// version across the cluster, and the record; with retiring on, the
// retiring member and the chart of open pages by version.
import { expect, test } from '@playwright/test';
import { Lab, recorded } from './support/lab';

test.describe('the fleet view', () => {
  let lab: Lab;


  test.afterEach(async ({}, testInfo) => {
    if (testInfo.status !== testInfo.expectedStatus) {
      for (const id of ['n1', 'n2']) {
        const logs = await lab.logs(id).catch(() => '');
        if (logs) await testInfo.attach(`${id}.log`, { body: logs, contentType: 'text/plain' });
      }
    }
    await lab.stop();
  });

  test('follows a rolling deploy live: members, rollout, open tabs, the announcement', async ({ page, browser }, testInfo) => {
    lab = await Lab.start(2);
    await lab.startNode('n1', '0.1.0');
    await lab.until('the baseline 0.1.0', (s) => recorded(s)?.join() === '0.1.0,baseline' && s.view?.state === 'settled');
    // Somebody keeps a 0.1.0 page open.
    const user = await browser.newPage();
    await user.goto(lab.proxy);
    await expect(user.getByTestId('page-version')).toHaveText('0.1.0');
    await expect(user.getByTestId('stream-status')).toHaveText('connected');

    await lab.startNode('n2', '1.0.0');
    await lab.until('a mixed cluster of 2', (s) => s.view?.state === 'mixed' && s.view.members.length === 2);
    const n2 = (await lab.status()).nodes.find((n) => n.id === 'n2')!;
    expect(n2.admin_port).toBeTruthy();
    const fleet = `http://127.0.0.1:${n2.admin_port}/fleet`;

    await page.goto(fleet);
    await expect(page.getByTestId('fleet-live')).toHaveText('live');
    await expect(page.getByTestId('fleet-member')).toHaveCount(2);
    await expect(page.getByTestId('fleet-rollout')).toContainText('1.0.0 ×1');
    await expect(page.getByTestId('fleet-rollout')).toContainText('0.1.0 ×1');
    await expect(page.getByTestId('fleet-summary')).toContainText('mixed');
    // n1's heartbeats carry its tabs: the open 0.1.0 page is counted.
    await expect(page.getByTestId('fleet-tabs')).toContainText('0.1.0: 1');
    await expect(page.getByTestId('fleet-record')).toContainText('0.1.0 (baseline');
    await page.screenshot({ path: testInfo.outputPath('fleet.png'), fullPage: true });

    // The old node leaves: the same page, without a reload, shows the
    // announcement, one member, and the old tab still open (now on n2).
    await lab.stopNode('n1');
    await expect(page.getByTestId('fleet-record')).toContainText('1.0.0 (announced', { timeout: 30_000 });
    await expect(page.getByTestId('fleet-member')).toHaveCount(1);
    await expect(page.getByTestId('fleet-rollout')).toHaveText('1.0.0 ×1');
    await expect(page.getByTestId('fleet-recent')).toContainText('0.1.0 (baseline');
    await expect(page.getByTestId('fleet-tabs')).toContainText('0.1.0: 1');
    await expect(user.getByTestId('version-banner')).toBeVisible();

    // The node's public port has no fleet view.
    const publicFleet = await page.request.get(`http://127.0.0.1:${n2.port}/fleet`);
    expect(publicFleet.status()).toBe(404);
  });

  test('shows a retiring member, the pages it stays for, and the drain chart', async ({ page, browser }, testInfo) => {
    // A grace period longer than the old tab's reconnection to n2 and n2's
    // next heartbeat: until then nobody has counted the tab.
    lab = await Lab.start(2, 'e2e', { env: { VO_RETIRE_FOR: '60s', VO_RETIRE_GRACE: '10s' } });
    await lab.startNode('n1', '0.1.0');
    await lab.until('the baseline 0.1.0', (s) => recorded(s)?.join() === '0.1.0,baseline' && s.view?.state === 'settled');
    const user = await browser.newPage();
    await user.goto(lab.proxy);
    await expect(user.getByTestId('stream-status')).toHaveText('connected');

    await lab.startNode('n2', '1.0.0');
    await lab.until('a mixed cluster of 2', (s) => s.view?.state === 'mixed' && s.view.members.length === 2);
    const n2 = (await lab.status()).nodes.find((n) => n.id === 'n2')!;
    await page.goto(`http://127.0.0.1:${n2.admin_port}/fleet`);
    await expect(page.getByTestId('fleet-live')).toHaveText('live');
    const drain = page.getByTestId('fleet-drain');
    // The open 0.1.0 page is an area of the chart (sampled once a second).
    await expect(drain.locator('path[data-version="0.1.0"]')).toHaveCount(1);
    await expect(drain).toContainText('0.1.0: 1 now');

    // n1 retires: it stays for the open 0.1.0 page (no node of 1.0.0 can
    // serve it), and no longer counts for settlement: 1.0.0 is announced.
    await lab.retireNode('n1');
    await expect(page.locator('[data-testid=fleet-member][data-node=n1]')).toHaveAttribute('data-state', 'retiring');
    await expect(page.getByTestId('fleet-summary')).toContainText('2 members (1 retiring)');
    await expect(page.getByTestId('fleet-rollout')).toContainText('0.1.0 ×1 retiring');
    await expect(page.getByTestId('fleet-retiring')).toContainText('n1 (0.1.0): 1 open page of its build');
    await expect(page.getByTestId('fleet-record')).toContainText('1.0.0 (announced', { timeout: 30_000 });
    await expect(user.getByTestId('version-banner')).toBeVisible();
    // The tab, reconnected to n2, is counted again in the chart.
    await expect(drain).toContainText('0.1.0: 1 now');
    await page.screenshot({ path: testInfo.outputPath('fleet.png'), fullPage: true });

    // The user reloads onto 1.0.0: nothing needs n1 any more, it leaves
    // after its grace period; the chart keeps the hour's drain curve, the
    // new version stacked on the old one.
    // One reload, right after n1 retired: nginx sends it past n1's 503 to
    // n2 (the old tab's stream, retrying n2 on the streams' own upstream,
    // does not keep n2 marked down for page loads: README, nginx block).
    const reload = await user.reload();
    expect(reload?.status(), reload?.headers()['x-upstream']).toBe(200);
    await expect(user.getByTestId('page-version')).toHaveText('1.0.0');
    await expect(page.getByTestId('fleet-member')).toHaveCount(1, { timeout: 45_000 });
    await expect(page.getByTestId('fleet-retiring')).toHaveText('none');
    await expect(drain.locator('path[data-version="1.0.0"]')).toHaveCount(1);
    await expect(drain.locator('path[data-version="0.1.0"]')).toHaveCount(1);
    await expect(drain).toContainText('0.1.0: 0 now');
    await expect(drain).toContainText('1.0.0: 1 now');
  });
});

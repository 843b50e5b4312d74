// The operators' fleet view (`/fleet` on a node's admin listener), live
// through a rolling deploy: members, the rollout bar, open tabs per page
// version across the cluster, and the record.
import { expect, test } from '@playwright/test';
import { Lab, recorded } from './support/lab';

test.describe('the fleet view', () => {
  let lab: Lab;

  test.beforeEach(async () => {
    lab = await Lab.start(2);
  });

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
});

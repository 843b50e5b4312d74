// The single-node story: a tab stays open while its node is redeployed.
import { expect, test } from '@playwright/test';
import { freePort, Node } from './support/node';

test.describe('single node', () => {
  let node: Node | undefined;

  test.afterEach(async () => {
    await node?.stop();
    node = undefined;
  });

  test('the page renders its version, hydrates and shows no banner', async ({ page }) => {
    node = new Node({ port: await freePort(), version: '1.4.0' });
    await node.start();
    await page.goto(node.url);
    await expect(page.getByTestId('page-version')).toHaveText('1.4.0');
    // "connected" is only ever rendered by the hydrated wasm, once its EventSource is open.
    await expect(page.getByTestId('stream-status')).toHaveText('connected');
    await expect(page.getByTestId('cluster-state')).toContainText('settled on 1.4.0');
    await expect(page.getByTestId('version-banner')).toHaveCount(0);
  });

  test('a major redeploy shows the banner in the open tab; Reload brings the new version and keeps notes', async ({ page }) => {
    const port = await freePort();
    node = new Node({ port, version: '1.0.0' });
    await node.start();
    await page.goto(node.url);
    await expect(page.getByTestId('stream-status')).toHaveText('connected');
    await page.getByTestId('notes').fill('half-written thought');

    await node.stop();
    await expect(page.getByTestId('stream-status')).toHaveText('connecting');
    node = new Node({ port, version: '2.0.0' });
    await node.start();

    const banner = page.getByTestId('version-banner');
    await expect(banner).toContainText('2.0.0');
    // Still the same document: no reload happened.
    await expect(page.getByTestId('page-version')).toHaveText('1.0.0');

    await banner.getByRole('button', { name: 'Reload' }).click();
    await expect(page.getByTestId('page-version')).toHaveText('2.0.0');
    await expect(page.getByTestId('stream-status')).toHaveText('connected');
    await expect(page.getByTestId('version-banner')).toHaveCount(0);
    await expect(page.getByTestId('notes')).toHaveValue('half-written thought');
  });

  test('a minor redeploy updates the view but shows no banner', async ({ page }) => {
    const port = await freePort();
    node = new Node({ port, version: '2.0.0' });
    await node.start();
    await page.goto(node.url);
    await expect(page.getByTestId('stream-status')).toHaveText('connected');

    await node.stop();
    node = new Node({ port, version: '2.1.0' });
    await node.start();

    // The tab has heard of 2.1.0 (so a banner would be showing by now if it were due)...
    await expect(page.getByTestId('cluster-state')).toContainText('settled on 2.1.0');
    await expect(page.getByTestId('stream-status')).toHaveText('connected');
    // ...and it is compatible under the default policy.
    await expect(page.getByTestId('version-banner')).toHaveCount(0);
    await expect(page.getByTestId('page-version')).toHaveText('2.0.0');
  });
});

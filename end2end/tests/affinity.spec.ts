// Version affinity, in a browser: the example app (examples/todo) on three
// nodes behind nginx, deployed 1.0.0 -> 2.0.0 node by node. With retiring on,
// an old tab keeps adding todos after the deploy (its server function calls
// reach the one 1.0.0 node that stays, retiring), while its banner offers
// the reload; once it reloads, that node exits. With affinity off, today's 409.
import { expect, Page, Response, test } from '@playwright/test';
import { Lab } from './support/lab';
import { waitFor } from './support/node';

/** The settled version and the announced one, as the cluster reports them through nginx. */
async function clusterView(lab: Lab): Promise<{ state: string; settled: string | null; announced: string | null }> {
  const r = await fetch(`${lab.proxy}/api/version`);
  const body = await r.json();
  return { state: body.cluster.state, settled: body.cluster.settled_version, announced: body.cluster.announced_version };
}

/** Adds a todo and returns the server function's answer. */
async function addTodo(page: Page, text: string): Promise<Response> {
  const answer = page.waitForResponse((r) => r.url().includes('/api/add_todo') && r.request().method() === 'POST');
  await page.getByTestId('todo-input').fill(text);
  await page.getByTestId('todo-add').click();
  return answer;
}

async function running(lab: Lab, id: string): Promise<boolean> {
  return (await lab.status()).nodes.find((n) => n.id === id)?.running ?? false;
}

/** Starts n1..n3 on 1.0.0 and waits for the baseline; opens a tab on nginx. */
async function startOld(lab: Lab, page: Page) {
  for (const id of ['n1', 'n2', 'n3']) await lab.startNode(id, '1.0.0');
  await waitFor('the cluster settled on 1.0.0', async () => {
    const v = await clusterView(lab);
    return v.state === 'settled' && v.settled === '1.0.0' && v.announced === '1.0.0';
  });
  await page.goto(lab.proxy);
  await expect(page.getByRole('heading', { name: 'Todos' })).toBeVisible();
  const first = await addTodo(page, 'before the deploy');
  expect(first.status()).toBe(200);
  await page.evaluate(() => ((window as any).__sameDocument = true));
}

/** n4..n6 on 2.0.0, each old node stopped (`retire`) or retiring as its replacement starts. */
async function deploy(lab: Lab, stop: (id: string) => Promise<void>) {
  for (const [old, next] of [['n1', 'n4'], ['n2', 'n5'], ['n3', 'n6']]) {
    await lab.startNode(next, '2.0.0');
    await stop(old);
  }
  await waitFor('2.0.0 announced', async () => (await lab.announcements()).some((a) => a.version === '2.0.0'));
}

test.describe('version affinity through nginx (the example app)', () => {
  let lab: Lab | undefined;

  test.afterEach(async ({}, testInfo) => {
    if (lab && testInfo.status !== testInfo.expectedStatus) {
      for (const id of ['n1', 'n2', 'n3', 'n4', 'n5', 'n6']) {
        const logs = await lab.logs(id).catch(() => '');
        if (logs) await testInfo.attach(`${id}.log`, { body: logs, contentType: 'text/plain' });
      }
    }
    await lab?.stop();
    lab = undefined;
  });

  test('with retiring on, an old tab keeps working after the deploy, and its node exits once it reloads', async ({ page }) => {
    lab = await Lab.start(6, 'e2e', { app: 'todo', env: { VO_RETIRE_FOR: '60s', VO_RETIRE_GRACE: '2s' } });
    await startOld(lab, page);
    await deploy(lab, (id) => lab!.retireNode(id));

    // Announced while the last old node still runs (retiring): the banner
    // offers the reload, without a reload.
    const banner = page.getByTestId('version-banner');
    await expect(banner).toContainText('2.0.0');
    expect(await page.evaluate(() => (window as any).__sameDocument)).toBe(true);

    // One retiring node is enough for the old tab: the keeper stays, the
    // other old nodes leave after their grace period (which one stays
    // depends on who was still there when the last one retired).
    let keeper = '';
    await waitFor('all old nodes but one to exit', async () => {
      const old = [];
      for (const id of ['n1', 'n2', 'n3']) if (await running(lab!, id)) old.push(id);
      keeper = old.length === 1 ? old[0] : '';
      return old.length === 1;
    }, 15_000);

    // The old page's calls still work: every node nginx picks passes them
    // to the keeper (the todos live in its memory), whose list the page
    // then shows.
    for (const text of ['after the deploy', 'and once more']) {
      const answer = await addTodo(page, text);
      expect(answer.status(), await answer.text()).toBe(200);
      await expect(page.getByTestId('todo-list')).toContainText(text);
    }
    await expect(page.getByTestId('todo-error')).toHaveCount(0);
    expect(await page.evaluate(() => (window as any).__sameDocument)).toBe(true);

    // Reload: the new version (the retiring node refuses page loads; nginx
    // asks the next one), and nothing needs 1.0.0 any more.
    await banner.getByRole('button', { name: 'Reload' }).click();
    await waitFor('the page reloaded', async () => (await page.evaluate(() => (window as any).__sameDocument)) !== true);
    await expect(page.getByTestId('version-banner')).toHaveCount(0);
    const fresh = await addTodo(page, 'on the new version');
    expect(fresh.status()).toBe(200);
    // The grace period (2 s), a heartbeat or two: the keeper exits.
    await waitFor(`${keeper} (the keeper) to exit`, async () => !(await running(lab!, keeper)), 15_000);
  });

  test('with affinity off, an old tab\'s call after the deploy is refused with 409 as before', async ({ page }) => {
    lab = await Lab.start(6, 'e2e', { app: 'todo', env: { VO_AFFINITY: 'off' } });
    await startOld(lab, page);
    await deploy(lab, (id) => lab!.stopNode(id));
    await expect(page.getByTestId('version-banner')).toContainText('2.0.0');
    const answer = await addTodo(page, 'too late');
    expect(answer.status()).toBe(409);
    const body = await answer.json();
    expect(body.error).toBe('stale_client');
    expect(body.forward).toBeUndefined();
    await expect(page.getByTestId('todo-error')).toContainText('Not saved: this page is out of date');
  });
});

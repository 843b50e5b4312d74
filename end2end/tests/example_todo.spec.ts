// The example app (examples/todo): a different Leptos app that embeds the
// version-observer crate the way the README says. Its page shows the banner
// after a major redeploy, with no reload, and its own features keep working.
import { ChildProcess, spawn } from 'node:child_process';
import * as path from 'node:path';
import { expect, test } from '@playwright/test';
import { freePort, REPO_ROOT, waitFor } from './support/node';

const BINARY = process.env.VO_TODO_BIN ?? path.join(REPO_ROOT, 'target', 'debug', 'todo');

/** The example's server, configured the Leptos way (LEPTOS_* variables). */
class TodoApp {
  private child?: ChildProcess;
  readonly logs: string[] = [];

  constructor(readonly port: number, readonly version: string) {}

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  async start() {
    const child = spawn(BINARY, [], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        APP_VERSION: this.version,
        LEPTOS_SITE_ADDR: `127.0.0.1:${this.port}`,
        LEPTOS_SITE_ROOT: 'target/site-todo',
        LEPTOS_OUTPUT_NAME: 'version-observer',
        LEPTOS_ENV: 'PROD',
      },
    });
    child.stdout?.on('data', (d) => this.logs.push(String(d)));
    child.stderr?.on('data', (d) => this.logs.push(String(d)));
    this.child = child;
    await waitFor(`the todo app ${this.version}`, async () => {
      if (child.exitCode !== null) throw new Error(`the todo app exited:\n${this.logs.join('')}`);
      const r = await fetch(`${this.url}/api/version`);
      return r.ok && (await r.json()).node.version === this.version;
    });
  }

  async stop() {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
}

/** Errors the page throws or logs (a hydration panic is both). */
function pageErrors(page: import('@playwright/test').Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => {
    // A missing favicon is the browser's business, not the app's.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text());
  });
  return errors;
}

test.describe('the example app', () => {
  let app: TodoApp | undefined;

  test('every route hydrates, a Resource inside <Suspense> included, with <ReloadOnNavigation/> in the app', async ({ page }) => {
    const errors = pageErrors(page);
    const port = await freePort();
    app = new TodoApp(port, '1.0.0');
    await app.start();
    for (const route of ['/', '/about']) {
      await page.goto(app.url + route);
      // Server-rendered with its data...
      if (route === '/about') await expect(page.getByTestId('todo-count')).toContainText('todos so far');
      else await expect(page.getByRole('heading', { name: 'Todos' })).toBeVisible();
    }
    // ...and hydrated: the button's handler runs (a page whose hydration
    // panicked keeps its HTML and ignores clicks).
    await page.getByTestId('about-more').click();
    await expect(page.getByTestId('about-details')).toBeVisible();
    await page.getByRole('link', { name: 'Todos' }).click();
    await expect(page.getByRole('heading', { name: 'Todos' })).toBeVisible();
    expect(errors, errors.join('\n')).toEqual([]);
  });

  test.afterEach(async () => {
    await app?.stop();
    app = undefined;
  });

  test('its server function and routes work, a major redeploy shows the banner without a reload, and the next link loads the new version', async ({ page }) => {
    const port = await freePort();
    app = new TodoApp(port, '1.0.0');
    await app.start();
    await page.goto(app.url);
    await expect(page.getByRole('heading', { name: 'Todos' })).toBeVisible();

    // Hydrated: the form goes through the server function without a page load.
    await page.getByTestId('todo-input').fill('buy milk');
    await page.getByTestId('todo-add').click();
    await expect(page.getByTestId('todo-list')).toContainText('buy milk');
    await page.getByRole('link', { name: 'About' }).click();
    await expect(page.getByTestId('about')).toBeVisible();
    await expect(page.getByTestId('version-banner')).toHaveCount(0);

    // A major redeploy on the same port.
    await page.evaluate(() => ((window as any).__sameDocument = true));
    await app.stop();
    app = new TodoApp(port, '2.0.0');
    await app.start();

    const banner = page.getByTestId('version-banner');
    await expect(banner).toContainText('2.0.0', { timeout: 15_000 });
    await expect(banner).toHaveAttribute('role', 'status');
    // No reload happened: the marker set on the old document is still there.
    expect(await page.evaluate(() => (window as any).__sameDocument)).toBe(true);

    // <ReloadOnNavigation/>: the next link loads the new version in full.
    await page.getByRole('link', { name: 'Todos' }).click();
    await waitFor('the page loaded in full', async () => (await page.evaluate(() => (window as any).__sameDocument)) !== true);
    await expect(page).toHaveURL(new RegExp(`^${app.url}/?$`));
    await expect(page.getByRole('heading', { name: 'Todos' })).toBeVisible();
    await expect(page.getByTestId('version-banner')).toHaveCount(0);
  });

  test('the request guard: after a major redeploy an old tab\'s server function call is refused, never runs, and the banner shows at once', async ({ page, context }) => {
    const port = await freePort();
    app = new TodoApp(port, '1.0.0');
    await app.start();
    await page.goto(app.url);
    await page.getByTestId('todo-input').fill('first');
    await page.getByTestId('todo-add').click();
    await expect(page.getByTestId('todo-list')).toContainText('first');

    // The stream cannot reconnect: only the refused call can tell the page.
    await context.route('**/api/version/events*', (route) => route.abort());
    await app.stop();
    app = new TodoApp(port, '2.0.0');
    await app.start();
    await expect(page.getByTestId('version-banner')).toHaveCount(0);

    await page.getByTestId('todo-input').fill('from the old tab');
    await page.getByTestId('todo-add').click();
    await expect(page.getByTestId('todo-error')).toContainText('Not saved: this page is out of date');
    await expect(page.getByTestId('version-banner')).toContainText('2.0.0');

    // The 2.0.0 server never ran it: after the reload, its list has only
    // what the new page adds.
    await context.unroute('**/api/version/events*');
    await page.getByTestId('version-banner').getByRole('button', { name: 'Reload' }).click();
    await expect(page.getByTestId('todo-list')).not.toContainText('first');
    await page.getByTestId('todo-input').fill('from the new tab');
    await page.getByTestId('todo-add').click();
    await expect(page.getByTestId('todo-list')).toContainText('from the new tab');
    await expect(page.getByTestId('todo-list')).not.toContainText('from the old tab');
    await expect(page.getByTestId('version-banner')).toHaveCount(0);
  });
});

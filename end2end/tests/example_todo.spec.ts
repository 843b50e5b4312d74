// The example app (examples/todo): a different Leptos app that embeds the
// version-observer crate the way the README says. Its page shows the banner
// after a major redeploy, with no reload, and its own features keep working.
import { ChildProcess, spawn } from 'node:child_process';
import * as path from 'node:path';
import { expect, test } from '@playwright/test';
import { freePort, REPO_ROOT, waitFor } from './support/node';

const BINARY = process.env.VO_TODO_BIN ?? path.join(REPO_ROOT, 'target', 'debug', 'todo');

/** The same app with version-observer's routes under TODO_VO_PREFIX (examples/todo/src/bin/under_prefix.rs). */
const UNDER_PREFIX = path.join(path.dirname(BINARY), 'todo-under-prefix');

interface TodoOptions {
  /** The server binary [default: the example's own `todo`]. */
  binary?: string;
  /** Where version-observer's routes are [default: at the root]. */
  prefix?: string;
  env?: Record<string, string>;
}

/** The example's server, configured the Leptos way (LEPTOS_* variables). */
class TodoApp {
  private child?: ChildProcess;
  readonly logs: string[] = [];

  constructor(readonly port: number, readonly version: string, readonly options: TodoOptions = {}) {}

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  async start() {
    const prefix = this.options.prefix ?? '';
    const child = spawn(this.options.binary ?? BINARY, [], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        ...(this.options.env ?? {}),
        ...(prefix ? { TODO_VO_PREFIX: prefix } : {}),
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
      const r = await fetch(`${this.url}${prefix}/api/version`);
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

/** The page's console warnings. */
function pageWarnings(page: import('@playwright/test').Page): string[] {
  const warnings: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'warning') warnings.push(m.text());
  });
  return warnings;
}

/** Adds a todo; the server function's request. */
async function addTodo(page: import('@playwright/test').Page, text: string) {
  const request = page.waitForRequest((r) => r.method() === 'POST' && r.url().includes('/api/'));
  await page.getByTestId('todo-input').fill(text);
  await page.getByTestId('todo-add').click();
  return request;
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

  test('with its routes under a prefix, the banner, the navigation reload and the request guard use the options in the page\'s context', async ({ page }) => {
    const errors = pageErrors(page);
    const warnings = pageWarnings(page);
    const streams: string[] = [];
    page.on('request', (r) => {
      if (r.url().includes('/api/version/events')) streams.push(new URL(r.url()).pathname);
    });
    const port = await freePort();
    app = new TodoApp(port, '1.0.0', { binary: UNDER_PREFIX, prefix: '/vo' });
    await app.start();
    // (The version route is only under the prefix; the lean listener also
    // answers a stream request at the default path, so the check below is
    // on the URLs the page asked for.)
    expect((await fetch(`${app.url}/api/version`)).status).toBe(404);
    await page.goto(app.url);
    await waitFor('the page\'s stream', async () => streams.length > 0);
    // The fetch wrapper is on: the server function's request names the page.
    const call = await addTodo(page, 'under a prefix');
    expect(call.headers()['x-version-observer-page']).toBe('1.0.0');
    await expect(page.getByTestId('todo-list')).toContainText('under a prefix');
    await page.getByRole('link', { name: 'About' }).click();
    await expect(page.getByTestId('about')).toBeVisible();
    // (Before the redeploy: a stream that loses its server logs errors.)
    expect(errors, errors.join('\n')).toEqual([]);

    await page.evaluate(() => ((window as any).__sameDocument = true));
    await app.stop();
    app = new TodoApp(port, '2.0.0', { binary: UNDER_PREFIX, prefix: '/vo' });
    await app.start();
    await expect(page.getByTestId('version-banner')).toContainText('2.0.0', { timeout: 15_000 });
    expect(await page.evaluate(() => (window as any).__sameDocument)).toBe(true);
    // <ReloadOnNavigation/> uses the same state: the next link loads in full.
    await page.getByRole('link', { name: 'Todos' }).click();
    await waitFor('the page loaded in full', async () => (await page.evaluate(() => (window as any).__sameDocument)) !== true);
    await expect(page.getByTestId('version-banner')).toHaveCount(0);

    // Every stream the page opened went to the prefix; one set of options
    // for the page, so no warning.
    expect(streams.length).toBeGreaterThan(0);
    expect(streams.every((p) => p === '/vo/api/version/events'), streams.join(', ')).toBe(true);
    expect(warnings.filter((w) => w.includes('version-observer')), warnings.join('\n')).toEqual([]);
  });

  test('with the fetch wrapper off, the page\'s requests carry no version header, and the banner still comes from the stream', async ({ page }) => {
    const port = await freePort();
    const options = { binary: UNDER_PREFIX, prefix: '/vo', env: { TODO_WRAP_FETCH: '0' } };
    app = new TodoApp(port, '1.0.0', options);
    await app.start();
    await page.goto(app.url);
    const call = await addTodo(page, 'unguarded');
    expect(call.headers()['x-version-observer-page']).toBeUndefined();
    await expect(page.getByTestId('todo-list')).toContainText('unguarded');

    await app.stop();
    app = new TodoApp(port, '2.0.0', options);
    await app.start();
    await expect(page.getByTestId('version-banner')).toContainText('2.0.0', { timeout: 15_000 });
    // Not guarded: the old page's call reaches the new server's handler
    // (guarding it is the host's to wire).
    const late = await addTodo(page, 'reached 2.0.0');
    expect(late.headers()['x-version-observer-page']).toBeUndefined();
    expect((await late.response())?.status()).toBe(200);
  });

  test('a page rendered without the observer\'s context says so once in the console, and still hydrates', async ({ page }) => {
    const errors = pageErrors(page);
    const warnings = pageWarnings(page);
    const port = await freePort();
    app = new TodoApp(port, '1.0.0');
    await app.start();
    // The page as an app without `observer.context()` renders it: its
    // page info (version and node) empty.
    await page.route(`${app.url}/`, async (route) => {
      const response = await route.fetch();
      const html = await response.text();
      const stripped = html.replace(/(__RESOLVED_RESOURCES\[\d+\] = )"\d+\.\d+\.\d+ [^"]*"/g, '$1""');
      expect(stripped).not.toEqual(html);
      await route.fulfill({ response, body: stripped });
    });
    await page.goto(app.url);
    await page.getByTestId('todo-input').fill('no context');
    await page.getByTestId('todo-add').click();
    await expect(page.getByTestId('todo-list')).toContainText('no context');
    const said = warnings.filter((w) => w.includes('observer.context()'));
    expect(said, warnings.join('\n')).toHaveLength(1);
    expect(said[0]).toContain('leptos_routes_with_context');
    expect(errors, errors.join('\n')).toEqual([]);
  });
});

// Two builds behind round-robin nginx during a rolling deploy: whichever node
// answers a request, every page loads the bundle of its own build (content-
// hashed names; a node lacking another build's file fetches it from the
// cluster's asset store), hydrates, and shows its own version.
import { expect, Response, test } from '@playwright/test';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Lab } from './support/lab';
import { REPO_ROOT, waitFor } from './support/node';

const SITE = path.join(REPO_ROOT, 'target', 'site');
const LOADS = 50;

function hashesOf(root: string): Record<string, string> {
  const text = fs.readFileSync(path.join(root, 'hash.txt'), 'utf8');
  return Object.fromEntries(
    text.trim().split('\n').map((line) => line.split(':').map((s) => s.trim()) as [string, string]),
  );
}

/** A wasm custom section (ignored by engines): id 0, size, name, payload. */
function customSection(name: string, payload: string): Buffer {
  const leb = (n: number) => {
    const out: number[] = [];
    do {
      let byte = n & 0x7f;
      n >>>= 7;
      if (n !== 0) byte |= 0x80;
      out.push(byte);
    } while (n !== 0);
    return Buffer.from(out);
  };
  const body = Buffer.concat([leb(name.length), Buffer.from(name), Buffer.from(payload)]);
  return Buffer.concat([Buffer.from([0]), leb(body.length), body]);
}

const MARKER = customSection('vo-build', 'B');

/**
 * A second build of the site: the same code with different bytes (a custom
 * section in the wasm naming the build, a comment in the JS and the CSS), so
 * its content hashes (cargo-leptos' MD5, base64url) and file names differ,
 * as a new release's do.
 */
function buildB(): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vo-build-b-'));
  fs.mkdirSync(path.join(root, 'pkg'));
  const a = hashesOf(SITE);
  const lines: string[] = [];
  for (const ext of ['js', 'wasm', 'css']) {
    const original = fs.readFileSync(path.join(SITE, 'pkg', `version-observer.${a[ext]}.${ext}`));
    const extra = ext === 'wasm' ? MARKER : Buffer.from(ext === 'js' ? '\n// build B\n' : '\n/* build B */\n');
    const bytes = Buffer.concat([original, extra]);
    const hash = createHash('md5').update(bytes).digest('base64url');
    fs.writeFileSync(path.join(root, 'pkg', `version-observer.${hash}.${ext}`), bytes);
    lines.push(`${ext}: ${hash}`);
  }
  fs.writeFileSync(path.join(root, 'hash.txt'), lines.join('\n') + '\n');
  return root;
}

test('two builds behind round-robin nginx: every page loads its own bundle, hydrates, shows its version', async ({ browser }) => {
  test.setTimeout(600_000);
  const siteB = buildB();
  const wasm = {
    '0.1.0': `version-observer.${hashesOf(SITE).wasm}.wasm`,
    '1.0.0': `version-observer.${hashesOf(siteB).wasm}.wasm`,
  } as Record<string, string>;
  expect(wasm['0.1.0']).not.toEqual(wasm['1.0.0']);
  const lab = await Lab.start(2);
  try {
    await lab.startNode('n1', '0.1.0');
    await lab.startNode('n2', '1.0.0', siteB);
    // Both bundles are in the store once each node serves the other's wasm.
    const nodes = (await lab.status()).nodes;
    const url = (id: string, file: string) =>
      `http://127.0.0.1:${nodes.find((n) => n.id === id)!.port}/pkg/${file}`;
    for (const [id, file] of [['n1', wasm['1.0.0']], ['n2', wasm['0.1.0']]]) {
      await waitFor(`${id} to serve ${file}`, async () => (await fetch(url(id, file))).ok, 30_000);
    }

    const errors: string[] = [];
    const seen: Record<string, number> = {};
    for (let i = 0; i < LOADS; i++) {
      // A fresh context each time: an empty cache, so every file is asked
      // for again, and round robin sends them to either node.
      const context = await browser.newContext();
      const page = await context.newPage();
      page.on('console', (m) => {
        // The browser's own favicon request (the site has none) is not the page's.
        if (m.type() === 'error' && !m.location().url.endsWith('/favicon.ico')) {
          errors.push(`load ${i}: ${m.text()} (${m.location().url})`);
        }
      });
      page.on('pageerror', (e) => errors.push(`load ${i}: ${e}`));
      const wasmResponses: Response[] = [];
      page.on('response', (r) => {
        if (new URL(r.url()).pathname.endsWith('.wasm')) wasmResponses.push(r);
      });
      const response = await page.goto(lab.proxy);
      expect(response?.status()).toBe(200);
      const version = (await page.getByTestId('page-version').textContent())!.trim();
      expect(Object.keys(wasm), `load ${i}`).toContain(version);
      // Hydrated: the page's own stream is connected.
      await expect(page.getByTestId('stream-status'), `load ${i} (${version})`).toHaveText('connected');
      // The page asked for its own build's wasm, got it (from whichever
      // node), and the bytes are its build's.
      expect(wasmResponses.map((r) => new URL(r.url()).pathname), `load ${i}`).toEqual([`/pkg/${wasm[version]}`]);
      const served = wasmResponses[0];
      expect(served.status()).toBe(200);
      expect(served.headers()['cache-control']).toBe('public, max-age=31536000, immutable');
      const bytes = await served.body();
      expect(bytes.subarray(bytes.length - MARKER.length).equals(MARKER), `load ${i}: build of ${version}`).toBe(
        version === '1.0.0',
      );
      seen[version] = (seen[version] ?? 0) + 1;
      await context.close();
    }
    expect(errors).toEqual([]);
    // Round robin served pages of both builds.
    expect(Object.keys(seen).sort()).toEqual(['0.1.0', '1.0.0']);
  } finally {
    await lab.stop();
    fs.rmSync(siteB, { recursive: true, force: true });
  }
});

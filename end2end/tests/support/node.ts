// Starting and stopping real version-observer nodes for browser tests.
import { ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import * as path from 'node:path';

export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
const BINARY = process.env.VO_BIN ?? path.join(REPO_ROOT, 'target', 'debug', 'version-observer');

/** A free loopback port (bind port 0, read it, release it). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') return reject(new Error('no port'));
      server.close(() => resolve(address.port));
    });
  });
}

/** Polls `check` until it returns true, or fails after `timeoutMs`. */
export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface NodeOptions {
  port: number;
  version: string;
  nodeId?: string;
  extraArgs?: string[];
}

/** One node process, run from the repository root as operators do. */
export class Node {
  private child?: ChildProcess;
  readonly logs: string[] = [];

  constructor(readonly opts: NodeOptions) {}

  get url() {
    return `http://127.0.0.1:${this.opts.port}`;
  }

  async start() {
    const args = [
      '--listen', `127.0.0.1:${this.opts.port}`,
      '--app-version', this.opts.version,
      '--node-id', this.opts.nodeId ?? `e2e-${this.opts.port}`,
      ...(this.opts.extraArgs ?? []),
    ];
    const child = spawn(BINARY, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', (d) => this.logs.push(String(d)));
    child.stderr?.on('data', (d) => this.logs.push(String(d)));
    this.child = child;
    await waitFor(`node ${this.opts.version} on ${this.url}`, async () => {
      if (child.exitCode !== null) throw new Error(`node exited:\n${this.logs.join('')}`);
      const r = await fetch(`${this.url}/api/version`);
      const body = await r.json();
      return r.ok && body.node.version === this.opts.version;
    });
  }

  /** Graceful stop (SIGTERM), waiting for the process to exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM') {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await exited;
  }
}

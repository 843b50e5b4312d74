// A cluster on loopback for browser tests: nats-server, node slots n1..nN and
// nginx in front, all started by `vo-lab serve` (the same lab as `vo-lab demo`
// and the Rust cluster tests) and driven over its control API.
import { ChildProcess, spawn } from 'node:child_process';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { REPO_ROOT, waitFor } from './node';

const LAB_BIN = process.env.VO_LAB_BIN ?? path.join(REPO_ROOT, 'target', 'debug', 'vo-lab');

/** The nodes' cluster timings, as `vo-lab serve` reports them. */
export interface Timings {
  nodeTimeoutMs: number;
  leaseMs: number;
  roundTimeoutMs: number;
  safetyIntervalMs: number;
}

/**
 * A timings preset of the lab (`vo-lab serve --timings`): `e2e` is short
 * enough for tests and long enough for a loaded 2-core machine; `default` is
 * the product's. The values live in the lab; the lab says which it used.
 */
export type TimingsPreset = 'default' | 'fast' | 'e2e';

/** More than the node count and timings: what the nodes run, and with what. */
export interface LabOptions {
  /** `reference` (the version-observer node, the default) or `todo` (the example app). */
  app?: 'reference' | 'todo';
  /** `VO_*` variables for every node (both apps read them), e.g. `{ VO_RETIRE_FOR: '60s' }`. */
  env?: Record<string, string>;
}

/** The line `vo-lab serve` prints once the lab is up. */
interface Started {
  control: string;
  proxy: string;
  nats: string;
  timings: {
    node_timeout_ms: number;
    lease_ms: number;
    round_timeout_ms: number;
    safety_interval_ms: number;
  };
}

export interface Announcement {
  at_ms: number;
  version: string;
  previous: string | null;
  revision: number;
  leader: string;
}

export interface LabStatus {
  proxy: string;
  nodes: { id: string; port: number; admin_port: number | null; running: boolean; version: string | null }[];
  view: null | {
    state: 'settled' | 'mixed' | 'unknown';
    leader: string | null;
    settled_version: string | null;
    members: { id: string; version: string }[];
    announced: null | { revision: number; record: { version: string; kind: 'baseline' | 'announcement' } };
  };
  announcements: Announcement[];
}

export class Lab {
  private constructor(
    private readonly child: ChildProcess,
    readonly control: string,
    /** nginx: what the browser opens. */
    readonly proxy: string,
    readonly timings: Timings,
    private readonly output: string[],
  ) {}

  static async start(nodes = 3, preset: TimingsPreset = 'e2e', options: LabOptions = {}): Promise<Lab> {
    const args = ['serve', '--nodes', String(nodes), '--timings', preset];
    if (options.app) args.push('--app', options.app);
    for (const [name, value] of Object.entries(options.env ?? {})) args.push(`--node-env=${name}=${value}`);
    const child = spawn(LAB_BIN, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    const output: string[] = [];
    child.stderr?.on('data', (d) => output.push(String(d)));
    const first = await new Promise<string>((resolve, reject) => {
      const lines = readline.createInterface({ input: child.stdout! });
      lines.once('line', resolve);
      child.once('exit', (code) => reject(new Error(`vo-lab exited (${code}):\n${output.join('')}`)));
      child.once('error', reject);
    });
    const started: Started = JSON.parse(first);
    const t = started.timings;
    const used: Timings = {
      nodeTimeoutMs: t.node_timeout_ms,
      leaseMs: t.lease_ms,
      roundTimeoutMs: t.round_timeout_ms,
      safetyIntervalMs: t.safety_interval_ms,
    };
    return new Lab(child, started.control, started.proxy, used, output);
  }

  private async call(method: 'GET' | 'POST', route: string, body?: unknown) {
    const response = await fetch(`${this.control}${route}`, {
      method,
      headers: body ? { 'content-type': 'application/json' } : undefined,
      body: body ? JSON.stringify(body) : undefined,
    });
    if (!response.ok) throw new Error(`${method} ${route}: ${response.status} ${await response.text()}`);
    return response;
  }

  /** Starts a node; `siteRoot`: another build's site instead of target/site. */
  async startNode(id: string, version: string, siteRoot?: string) {
    await this.call('POST', `/nodes/${id}/start`, siteRoot ? { version, site_root: siteRoot } : { version });
  }

  /** Graceful stop (SIGTERM); resolves once the process has exited cleanly. */
  async stopNode(id: string) {
    await this.call('POST', `/nodes/${id}/stop`);
  }

  /**
   * SIGTERM without waiting for the exit: a node with `VO_RETIRE_FOR`
   * retires (serves its version's open pages until none needs it) and exits
   * by itself. Resolves once it says it retires (or has exited).
   */
  async retireNode(id: string) {
    await this.call('POST', `/nodes/${id}/retire`);
  }

  /** `kill -9`. */
  async killNode(id: string) {
    await this.call('POST', `/nodes/${id}/kill`);
  }

  async status(): Promise<LabStatus> {
    return (await this.call('GET', '/status')).json();
  }

  async announcements(): Promise<Announcement[]> {
    return (await this.status()).announcements;
  }

  async logs(id: string): Promise<string> {
    return (await this.call('GET', `/nodes/${id}/logs`)).text();
  }

  /** Polls the lab's status until `check` holds. */
  async until(what: string, check: (s: LabStatus) => boolean, timeoutMs = 20_000): Promise<LabStatus> {
    let last: LabStatus | undefined;
    await waitFor(what, async () => {
      last = await this.status();
      return check(last);
    }, timeoutMs).catch((e) => {
      throw new Error(`${e.message}; last status: ${JSON.stringify(last)}`);
    });
    return last!;
  }

  /** Stops every node, nginx and nats-server, and waits for vo-lab to exit. */
  async stop() {
    const exited = new Promise((r) => this.child.once('exit', r));
    if (this.child.exitCode !== null) return;
    await this.call('POST', '/shutdown').catch(() => this.child.kill('SIGTERM'));
    await exited;
  }
}

/** The version and kind of the record the cluster's monitor holds. */
export function recorded(s: LabStatus): [string, string] | undefined {
  const record = s.view?.announced?.record;
  return record ? [record.version, record.kind] : undefined;
}

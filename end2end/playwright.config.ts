import { defineConfig } from '@playwright/test';

// Browsers cannot be downloaded on our machines: use the system Chromium
// (Debian's package), or whatever VO_CHROMIUM points at.
const executablePath = process.env.VO_CHROMIUM ?? '/usr/bin/chromium';

export default defineConfig({
  testDir: './tests',
  // Each test starts its own nodes on free ports; one at a time keeps a
  // 2-core machine from starving them.
  workers: 1,
  fullyParallel: false,
  timeout: 90_000,
  expect: { timeout: 15_000 },
  retries: 0,
  forbidOnly: !!process.env.CI,
  reporter: [['list']],
  use: {
    headless: true,
    trace: 'retain-on-failure',
    launchOptions: {
      executablePath,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--disable-quic',
        '--no-first-run',
      ],
    },
  },
});

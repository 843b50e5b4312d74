import { defineConfig } from '@playwright/test';

// Debian's Chromium, with our flags (chromium.cjs: the browser benchmark
// launches it the same way).
import chromiumLaunch from './chromium.cjs';

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
    launchOptions: chromiumLaunch,
  },
});

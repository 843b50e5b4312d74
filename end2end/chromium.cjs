// How every Chromium of ours is launched, by the Playwright tests
// (playwright.config.ts) and by the browser benchmark (bench/browser.mjs):
// browsers cannot be downloaded on our machines, so Debian's package (or
// whatever VO_CHROMIUM points at), with the flags that running as root on a
// closed network needs.
module.exports = {
  executablePath: process.env.VO_CHROMIUM ?? '/usr/bin/chromium',
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-quic',
    '--no-first-run',
  ],
};

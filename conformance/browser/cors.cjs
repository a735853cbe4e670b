// A page on the origin http://app.test (served by page.route, nothing listens for it) uploads
// and reads objects on the gateway with fetch and presigned URLs, as a web app would. For each
// case of CASES (JSON: [{name, put, get, body}]) it reports what the browser let the page see:
// {name: {put: {ok, status, etag} | {ok: false, error}, get: {ok, status, body, etag} | ...}}.
// The PUT carries a custom header, so the browser must ask the gateway first (a preflight).
const { chromium } = require('playwright-core');

async function main() {
  const cases = JSON.parse(process.env.CASES);
  // The gateway listens on loopback, and Chromium keeps pages of a public origin from
  // loopback whatever the CORS answer (private/local network access). A deployed gateway is
  // a public server: say so for its address, so that only its CORS answers decide.
  const gateways = [...new Set(cases.map((c) => new URL(c.put).host))];
  const browser = await chromium.launch({
    executablePath: process.env.HANSA_CHROMIUM,
    args: [
      '--no-sandbox',
      `--ip-address-space-overrides=${gateways.map((g) => `${g}=public`).join(',')}`,
    ],
  });
  try {
    const page = await browser.newPage();
    // The browser says why it blocked a request only on the console: kept for the report.
    const console_ = [];
    page.on('console', (m) => console_.push(m.text()));
    await page.route('http://app.test/**', (route) =>
      route.fulfill({
        status: 200,
        contentType: 'text/html',
        body: '<!doctype html><title>app</title><p>app.test</p>',
      }),
    );
    await page.goto('http://app.test/');
    // While any route is set, playwright intercepts every request and answers CORS
    // preflights itself, allowing all: the page's own requests must reach the gateway.
    await page.unrouteAll();
    const report = {};
    for (const c of cases) {
      report[c.name] = await page.evaluate(async ({ put, get, body }) => {
        const out = {};
        try {
          const r = await fetch(put, {
            method: 'PUT',
            body,
            headers: { 'content-type': 'text/plain', 'x-app-trace': 'cors-test' },
          });
          out.put = { ok: true, status: r.status, etag: r.headers.get('etag') };
        } catch (e) {
          out.put = { ok: false, error: String(e) };
        }
        try {
          const r = await fetch(get);
          out.get = { ok: true, status: r.status, body: await r.text(), etag: r.headers.get('etag') };
        } catch (e) {
          out.get = { ok: false, error: String(e) };
        }
        return out;
      }, c);
    }
    report.console = console_;
    return report;
  } finally {
    await browser.close();
  }
}

main().then(
  (report) => console.log(JSON.stringify(report)),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);

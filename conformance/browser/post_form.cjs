// A page on the origin http://app.test (served by page.route, nothing listens for it) holds
// an HTML form that uploads straight to the gateway (S3 POST object), as a web app's upload
// page does: hidden fields with the policy and signature the test made, a file input, submit.
// GOOD and BAD are the forms' fields (JSON: [[name, value], ...]); ACTION the bucket's URL;
// FILE the file's text. GOOD redirects (success_action_redirect) to http://app.test/uploaded,
// whose query is reported; BAD fails its policy and the page shows the gateway's answer.
// Reports {good: {url, bucket, key, etag}, bad: {url, status, text}}.
const { chromium } = require('playwright-core');

const escape = (s) =>
  String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function formPage(action, fields) {
  const inputs = fields
    .map(([n, v]) => `<input type="hidden" name="${escape(n)}" value="${escape(v)}">`)
    .join('\n');
  return `<!doctype html><title>upload</title>
<form id="upload" method="post" enctype="multipart/form-data" action="${escape(action)}">
${inputs}
<input type="file" name="file">
<button id="send" type="submit">Upload</button>
</form>`;
}

// Loads the form page, fills the file input and submits. With `redirected`, resolves with the
// URL the browser was sent to on app.test (playwright does not intercept a redirect's target,
// so the request is observed rather than answered); otherwise with the gateway's answer.
async function submit(page, action, fields, file, redirected) {
  await page.route('http://app.test/**', (route) =>
    route.fulfill({ status: 200, contentType: 'text/html', body: formPage(action, fields) }),
  );
  await page.goto('http://app.test/form');
  // While any route is set, playwright intercepts every request: the form must reach the
  // gateway itself.
  await page.unrouteAll();
  await page.setInputFiles('input[type=file]', {
    name: 'note.txt',
    mimeType: 'text/plain',
    buffer: Buffer.from(file),
  });
  if (redirected) {
    const [request] = await Promise.all([
      page.waitForRequest((r) => r.url().startsWith('http://app.test/uploaded')),
      page.click('#send'),
    ]);
    return { url: request.url() };
  }
  const [response] = await Promise.all([
    page.waitForNavigation({ waitUntil: 'load' }),
    page.click('#send'),
  ]);
  // An XML answer is shown in Chromium's viewer, which keeps the document's source apart.
  const text = await page.evaluate(() => {
    const source = document.getElementById('webkit-xml-viewer-source-xml');
    return source ? source.innerHTML : document.documentElement.outerHTML;
  });
  return { url: page.url(), status: response ? response.status() : null, text };
}

async function main() {
  const action = process.env.ACTION;
  const gateway = new URL(action).host;
  const browser = await chromium.launch({
    executablePath: process.env.HANSA_CHROMIUM,
    // The gateway listens on loopback; Chromium keeps public pages from loopback unless told
    // the address is a public server's, as a deployed gateway's would be.
    args: ['--no-sandbox', `--ip-address-space-overrides=${gateway}=public`],
  });
  try {
    const page = await browser.newPage();
    const report = {};
    const good = await submit(page, action, JSON.parse(process.env.GOOD), process.env.FILE, true);
    const landed = new URL(good.url);
    report.good = {
      url: good.url,
      bucket: landed.searchParams.get('bucket'),
      key: landed.searchParams.get('key'),
      etag: landed.searchParams.get('etag'),
    };
    report.bad = await submit(page, action, JSON.parse(process.env.BAD), process.env.FILE, false);
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

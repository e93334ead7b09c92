// A person's path through /docs (API.md §6), in headless Chromium driven by playwright-core:
// load the page (titled "Clientele API"), pick a version in the v1/v2 picker, "Authorize" with a
// bearer token, "Try it out" → "Execute" GET /vN/customers/{id} on a customer created beforehand, and
// require the live response the page shows to be 200 with that customer. Then "Try it out" on
// GET /vN/customers must start with every optional parameter empty (nothing prefilled from an
// example), and "Execute" as it stands must answer 200 with a list of real customers. Every request the
// page makes must go to the server under test on 127.0.0.1: the assets are the server's own.
// Any failed step exits non-zero with a message naming it.
//
// Usage: node docs_tryout.mjs BASE_URL TOKEN
//   BASE_URL  http://127.0.0.1:PORT of a running server
//   TOKEN     a write-scope bearer token (used to create the customer, then typed into "Authorize")
// CLIENTELE_DOCS_TOKEN, when set, is what gets typed into "Authorize" instead of TOKEN
// (scripts/api-tools.sh sets a wrong one to prove the check fails with the 401 the page shows).
// CHROMIUM overrides the browser binary (default /usr/bin/chromium). No browser is downloaded.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [base, token] = process.argv.slice(2);
if (!base || !token) {
  console.error('usage: node docs_tryout.mjs BASE_URL TOKEN');
  process.exit(2);
}
const typedToken = process.env.CLIENTELE_DOCS_TOKEN ?? token;
const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const origin = new URL(base).origin;
if (new URL(base).hostname !== '127.0.0.1') {
  console.error(`docs try-out: BASE_URL must be on 127.0.0.1, not ${base}`);
  process.exit(2);
}
const STEP_MS = 60_000; // generous: on a loaded 2-core machine Swagger UI can take many seconds to settle

let step = 'starting';
const log = (message) => console.log(`docs try-out: ${message}`);
const fail = (message) => {
  throw new Error(message);
};

// A customer to read back through the page, created over plain HTTP, not through the page.
async function createCustomer() {
  const response = await fetch(`${base}/v2/customers`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ name: 'Docs Try-Out', email: 'docs.tryout@example.com' }),
  });
  if (response.status !== 201) fail(`creating a customer answered ${response.status}: ${await response.text()}`);
  return (await response.json()).id;
}

// Every URL the page asked for, and the ones that were not the server under test.
const requested = [];
const foreign = [];
const isLocal = (url) => {
  const parsed = new URL(url);
  if (parsed.protocol === 'data:' || parsed.protocol === 'blob:' || parsed.protocol === 'about:') return true;
  return parsed.origin === origin;
};

async function pickVersion(page, version) {
  step = `picking ${version} in the version picker`;
  const picker = page.locator('.topbar select');
  await picker.waitFor({ state: 'visible', timeout: STEP_MS });
  const options = (await picker.locator('option').allTextContents()).map((text) => text.trim());
  if (!options.includes('v1') || !options.includes('v2')) fail(`the picker offers ${JSON.stringify(options)}, not v1 and v2`);
  await picker.selectOption({ label: version });
  step = `waiting for the ${version} document to render`;
  await page
    .locator('.information-container .title', { hasText: `Clientele API ${version}` })
    .waitFor({ state: 'visible', timeout: STEP_MS });
  await page.locator(`#operations-customers-getCustomer`).waitFor({ state: 'visible', timeout: STEP_MS });
}

async function authorize(page, version) {
  step = `${version}: opening "Authorize"`;
  await page.locator('.scheme-container button.authorize').click({ timeout: STEP_MS });
  const modal = page.locator('.dialog-ux .modal-ux');
  await modal.waitFor({ state: 'visible', timeout: STEP_MS });
  // A scheme authorized before (the other version's) shows "Logout" instead of an input: start over.
  const logout = modal.locator('.auth-btn-wrapper button', { hasText: 'Logout' });
  if (await logout.count()) await logout.first().click({ timeout: STEP_MS });
  step = `${version}: entering the token in "Authorize"`;
  const input = modal.locator('input#auth-bearer-value');
  await input.fill(typedToken, { timeout: STEP_MS });
  await modal.locator('.auth-btn-wrapper button.authorize').click({ timeout: STEP_MS });
  await modal.locator('h6', { hasText: 'Authorized' }).waitFor({ state: 'visible', timeout: STEP_MS });
  await modal.locator('.auth-btn-wrapper button.btn-done').click({ timeout: STEP_MS });
  await modal.waitFor({ state: 'hidden', timeout: STEP_MS });
}

async function tryGetCustomer(page, version, id) {
  const block = page.locator('#operations-customers-getCustomer');
  step = `${version}: expanding GET /${version}/customers/{id}`;
  if (!(await block.locator('.opblock-body').count())) await block.locator('.opblock-summary-control').click({ timeout: STEP_MS });
  await block.locator('.opblock-body').waitFor({ state: 'visible', timeout: STEP_MS });
  step = `${version}: "Try it out"`;
  // tryItOutEnabled opens the form at once ("Cancel" shown); otherwise press "Try it out".
  const tryOut = block.locator('button.try-out__btn', { hasText: 'Try it out' });
  if (await tryOut.count()) await tryOut.click({ timeout: STEP_MS });
  step = `${version}: filling the id parameter`;
  const idInput = block.locator('tr[data-param-name="id"] input');
  await idInput.waitFor({ state: 'visible', timeout: STEP_MS });
  const shown = await idInput.inputValue();
  if (shown !== '') fail(`the id parameter starts prefilled with ${JSON.stringify(shown)}, an id that does not exist`);
  await idInput.fill(id, { timeout: STEP_MS });
  step = `${version}: "Execute"`;
  await block.locator('button.execute').click({ timeout: STEP_MS });
  step = `${version}: waiting for the live response`;
  const live = block.locator('.live-responses-table tbody tr.response');
  await live.first().waitFor({ state: 'visible', timeout: STEP_MS });
  const status = (await live.first().locator('.response-col_status').innerText()).trim();
  const body = (await live.first().locator('.response-col_description').innerText()).trim();
  const requestUrl = (await block.locator('.request-url pre').first().innerText()).trim();
  log(`${version}: Execute → ${requestUrl} → ${status}`);
  if (requestUrl !== `${origin}/${version}/customers/${id}`) fail(`the request went to ${requestUrl}`);
  if (status !== '200') fail(`the live response was ${status}, not 200: ${body.slice(0, 300)}`);
  if (!body.includes(id)) fail(`the live response body does not show customer ${id}: ${body.slice(0, 300)}`);
}

// "Try it out" on the list: every input starts empty, and "Execute" untouched lists real customers.
async function tryListAsIs(page, version) {
  const block = page.locator('#operations-customers-listCustomers');
  step = `${version}: expanding GET /${version}/customers`;
  if (!(await block.locator('.opblock-body').count())) await block.locator('.opblock-summary-control').click({ timeout: STEP_MS });
  await block.locator('.opblock-body').waitFor({ state: 'visible', timeout: STEP_MS });
  const tryOut = block.locator('button.try-out__btn', { hasText: 'Try it out' });
  if (await tryOut.count()) await tryOut.click({ timeout: STEP_MS });
  step = `${version}: reading the list's parameter inputs`;
  await block.locator('tr[data-param-name="limit"] input').waitFor({ state: 'visible', timeout: STEP_MS });
  const inputs = block.locator('table.parameters tr[data-param-name] input');
  const prefilled = [];
  for (let i = 0; i < (await inputs.count()); i++) {
    const input = inputs.nth(i);
    const value = await input.inputValue();
    const row = await input.locator('xpath=ancestor::tr[@data-param-name]').getAttribute('data-param-name');
    if (value !== '') prefilled.push(`${row}=${JSON.stringify(value)}`);
  }
  if (prefilled.length) fail(`"Try it out" prefilled optional parameters: ${prefilled.join(', ')}`);
  log(`${version}: "Try it out" on the list starts with all ${await inputs.count()} inputs empty`);
  step = `${version}: "Execute" on the list as it stands`;
  await block.locator('button.execute').click({ timeout: STEP_MS });
  const live = block.locator('.live-responses-table tbody tr.response');
  await live.first().waitFor({ state: 'visible', timeout: STEP_MS });
  const status = (await live.first().locator('.response-col_status').innerText()).trim();
  const body = (await live.first().locator('.response-col_description').innerText()).trim();
  if (status !== '200') fail(`the list answered ${status}, not 200: ${body.slice(0, 300)}`);
  // The server may hold many customers (earlier checks made them): the first page lists real ones.
  const listed = body.match(/"id": "cus_[0-9A-Z]{26}"/g) ?? [];
  if (!listed.length) fail(`the first list call shows no customer: ${body.slice(0, 300)}`);
  log(`${version}: Execute on the untouched list → 200 with ${listed.length} customer(s)`);
}

const userDataDir = mkdtempSync(join(tmpdir(), 'clientele-docs-chromium-'));
let context;
let exitCode = 0;
try {
  step = 'creating a customer';
  const id = await createCustomer();

  step = `launching ${executablePath}`;
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
    ],
    timeout: 60_000,
  });
  context.setDefaultTimeout(STEP_MS);
  context.on('request', (request) => {
    requested.push(request.url());
    if (!isLocal(request.url())) foreign.push(request.url());
  });
  // Nothing leaves the machine even if the page tries: such requests are aborted (and fail the check).
  await context.route((url) => !isLocal(url.href), (route) => route.abort('blockedbyclient'));

  const page = context.pages()[0] ?? (await context.newPage());
  const pageErrors = [];
  page.on('pageerror', (error) => pageErrors.push(String(error)));

  step = `opening ${base}/docs`;
  const response = await page.goto(`${base}/docs`, { waitUntil: 'load', timeout: STEP_MS });
  if (!response || response.status() !== 200) fail(`/docs answered ${response?.status()}`);
  await page.locator('.information-container .title', { hasText: 'Clientele API v2' }).waitFor({ state: 'visible', timeout: STEP_MS });
  log('/docs rendered the v2 document (the default)');
  step = 'checking the page title';
  const title = await page.title();
  if (title !== 'Clientele API') fail(`the page is titled ${JSON.stringify(title)}, not "Clientele API"`);
  log(`the page is titled ${JSON.stringify(title)}`);

  // v1 first, then back to v2: both directions of the picker.
  for (const version of ['v1', 'v2']) {
    await pickVersion(page, version);
    await authorize(page, version);
    await tryGetCustomer(page, version, id);
    await tryListAsIs(page, version);
  }

  step = 'checking where the page sent requests';
  if (foreign.length) fail(`the page requested ${foreign.length} URL(s) off the server: ${[...new Set(foreign)].join(', ')}`);
  const assets = requested.filter((url) => url.startsWith(`${origin}/docs/`));
  if (!assets.some((url) => url.endsWith('swagger-ui-bundle.js'))) fail('swagger-ui-bundle.js was not loaded from the server');
  log(`all ${requested.length} requests of the page went to ${origin}`);
  if (pageErrors.length) fail(`the page threw: ${pageErrors.join('; ')}`);
  log('passed');
} catch (error) {
  console.error(`docs try-out FAILED while ${step}: ${error instanceof Error ? error.message : error}`);
  exitCode = 1;
} finally {
  await context?.close().catch(() => {});
  rmSync(userDataDir, { recursive: true, force: true });
}
process.exit(exitCode);

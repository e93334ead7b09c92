// Drives a client made with openapi-typescript + openapi-fetch through what an integration meets
// besides the happy path: ETags and rate-limit headers, error codes, a 429 and its Retry-After, and
// (through tools/later_release_proxy.py) response fields and error codes its document does not have.
//
// Usage: tsx evolution_check.ts VERSION BASE_URL TOKEN LIMITED_TOKEN MODE DOCUMENT
//   The types are generated/evolution-VERSION.d.ts, made from DOCUMENT: the current document, or the
//   baseline one (the one optic compares against) for the evolution test. tsc checks this file
//   against them, so a change that breaks the old types' use fails to compile.
//   openapi-fetch does not check bodies at run time; a TypeScript client trusts its types. So every
//   response is also checked against DOCUMENT's schema for its operation and status (ajv, JSON
//   Schema 2020-12, extra fields allowed as the documents allow them): a field removed, renamed or
//   retyped since DOCUMENT, or a code outside a closed enum, fails here as it would fail the old
//   client's users.
//   MODE current | fields | codes, as in evolution_check.py.
// The functions readHeaders, errorOf and withRetry are the README's examples.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import createClient, { type Middleware } from "openapi-fetch";
import { Ajv2020 } from "ajv/dist/2020.js";
import type { paths as V1 } from "./generated/evolution-v1.js";
import type { paths as V2 } from "./generated/evolution-v2.js";

const [version, baseUrl, token, limitedToken, mode, documentPath] = process.argv.slice(2);
// drop:FIELD and rename:FIELD:NEW: a breaking release (the proxy's), on which this check must fail.
assert.ok(["current", "fields", "codes"].includes(mode) || /^(drop|rename):/.test(mode), mode);
const adds = mode === "fields" || mode === "codes"; // whether the proxy adds fields
const where = `typescript ${version} (${mode})`;
const run = Math.random().toString(36).slice(2, 10);

/** The ETag and the rate-limit headers of any response. */
export function readHeaders(response: Response) {
  const number = (name: string) => Number(response.headers.get(name));
  return {
    etag: response.headers.get("etag"), // '"3"' on a single customer: send it back in If-Match
    limit: number("x-ratelimit-limit"),
    remaining: number("x-ratelimit-remaining"),
    resetSeconds: number("x-ratelimit-reset"),
    rateLimit: response.headers.get("ratelimit"), // IETF: "default";r=R;t=T
    rateLimitPolicy: response.headers.get("ratelimit-policy"), // IETF: "default";q=N;w=W
  };
}

const GENERIC_BY_STATUS: Record<number, string> = {
  400: "invalid request", 401: "authentication", 403: "permission", 404: "not found",
  409: "conflict", 412: "precondition failed", 429: "rate limited",
};

/** [code, meaning] of an error: a code this client knows means itself; any other means its status. */
export function errorOf(error: { error: { code: string } }, response: Response, known: readonly string[]) {
  const code = error.error.code;
  return [code, known.includes(code) ? code : GENERIC_BY_STATUS[response.status] ?? "server error"] as const;
}

/** Calls `call` and, on 429, waits `Retry-After` seconds and retries. */
export async function withRetry<T extends { response: Response }>(
  call: () => Promise<T>,
  attempts = 3,
  sleep = (seconds: number) => new Promise((resolve) => setTimeout(resolve, seconds * 1000)),
): Promise<T> {
  for (let attempt = 1; attempt < attempts; attempt++) {
    const result = await call();
    if (result.response.status !== 429) return result;
    await sleep(Number(result.response.headers.get("retry-after")));
  }
  return call();
}

// --- every response against DOCUMENT's schema ---------------------------------------------------
type Json = Record<string, any>;
const doc: Json = JSON.parse(readFileSync(documentPath, "utf8"));
const ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true });
ajv.addSchema(doc, "doc");
const known: string[] = (doc.components.schemas.KnownErrorCode ?? doc.components.schemas.ErrorCode).enum;
let checked = 0;

const validators = new Map<string, ReturnType<typeof ajv.compile>>();
const pointer = (...segments: string[]) =>
  "doc#" + segments.map((segment) => "/" + encodeURIComponent(segment.replace(/~/g, "~0").replace(/\//g, "~1"))).join("");

const conformance: Middleware = {
  async onResponse({ request, response, schemaPath }) {
    const method = request.method.toLowerCase();
    const status = String(response.status);
    const operation = doc.paths[schemaPath]?.[method];
    assert.ok(operation, `${where}: ${request.method} ${schemaPath} is not in the document`);
    let described = operation.responses[status];
    assert.ok(described, `${where}: ${request.method} ${schemaPath} answered ${status}, not in the document`);
    let location = ["paths", schemaPath, method, "responses", status];
    if (described.$ref) {
      const name = described.$ref.split("/").pop();
      described = doc.components.responses[name];
      location = ["components", "responses", name];
    }
    if (!described.content?.["application/json"]?.schema) return undefined;
    const ref = pointer(...location, "content", "application/json", "schema");
    let validate = validators.get(ref);
    if (!validate) {
      validate = ajv.compile({ $ref: ref });
      validators.set(ref, validate);
    }
    const body = await response.clone().json();
    if (!validate(body)) {
      assert.fail(`${where}: ${request.method} ${schemaPath} ${status} does not fit the document the client `
        + `was generated from: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(body).slice(0, 400)}`);
    }
    checked++;
    return undefined;
  },
};

function expectError(
  result: { error?: { error: { code: string; type: string; request_id: string } }; response: Response },
  status: number, code: string, scenario: string,
) {
  assert.equal(result.response.status, status, `${where} ${scenario}`);
  assert.ok(result.error, `${where} ${scenario}: no error body`);
  const [got, meaning] = errorOf(result.error, result.response, known);
  if (mode === "codes") {
    assert.equal(got, "code_added_later", `${where} ${scenario}`);
    assert.equal(meaning, GENERIC_BY_STATUS[status], `${where} ${scenario}`);
    assert.equal(result.error.error.type, "type_added_later");
  } else {
    assert.deepEqual([got, meaning], [code, code], `${where} ${scenario}`);
  }
  assert.equal(result.error.error.request_id, result.response.headers.get("x-request-id"));
  if (adds) assert.ok((result.error.error as Json).added_later, `${where} ${scenario}: added field`);
}

function expectHeaders(response: Response) {
  const seen = readHeaders(response);
  assert.ok(seen.limit >= 1 && seen.remaining >= 0 && seen.remaining < seen.limit && seen.resetSeconds >= 1, `${where} ${JSON.stringify(seen)}`);
  assert.equal(seen.rateLimit, `"default";r=${seen.remaining};t=${seen.resetSeconds}`);
  assert.ok(seen.rateLimitPolicy?.startsWith(`"default";q=${seen.limit};w=`), `${where} ${seen.rateLimitPolicy}`);
  return seen;
}

async function over429(list: () => Promise<any>) {
  let result = await list();
  for (let i = 0; i < 3 && result.response.status !== 429; i++) result = await list();
  expectError(result, 429, "rate_limited", "429");
  assert.ok(Number(result.response.headers.get("retry-after")) >= 1);
  assert.equal(readHeaders(result.response).remaining, 0);
  const waited: number[] = [];
  const retried = await withRetry(list, 2, async (seconds) => void waited.push(seconds));
  assert.equal(retried.response.status, 429);
  assert.ok(waited[0] >= 1, `${where}: waited ${waited}`);
}

async function v1(): Promise<void> {
  const client = createClient<V1>({ baseUrl, headers: { Authorization: `Bearer ${token}` } });
  client.use(conformance);
  const created = await client.POST("/v1/customers", {
    body: { name: `Evolution ${run}`, email: `evolution.${run}@example.com` },
  });
  assert.equal(created.response.status, 201, `${where} create`);
  expectHeaders(created.response);
  if (adds) assert.ok((created.data as Json).added_later, `${where}: added field`);
  const id = created.data!.id;
  const read = await client.GET("/v1/customers/{id}", { params: { path: { id } } });
  assert.equal(read.data?.email, `evolution.${run}@example.com`);
  const missing = id.slice(0, -1) + (id.endsWith("0") ? "1" : "0");
  expectError(await client.GET("/v1/customers/{id}", { params: { path: { id: missing } } }), 404, "resource_not_found", "404");
  expectError(await client.POST("/v1/customers", { body: { name: "Bad", email: "not-an-email" } }), 400, "parameter_invalid", "400");
  const limited = createClient<V1>({ baseUrl, headers: { Authorization: `Bearer ${limitedToken}` } });
  limited.use(conformance);
  await over429(() => limited.GET("/v1/customers", { params: { query: { limit: 1 } } }));
  await client.DELETE("/v1/customers/{id}", { params: { path: { id } } });
}

async function v2(): Promise<void> {
  const client = createClient<V2>({ baseUrl, headers: { Authorization: `Bearer ${token}` } });
  client.use(conformance);
  const body = { name: `Evolution ${run}`, email: `evolution.${run}@example.com` };
  const created = await client.POST("/v2/customers", { body });
  assert.equal(created.response.status, 201, `${where} create`);
  assert.equal(expectHeaders(created.response).etag, `"1"`);
  if (adds) assert.ok((created.data as Json).added_later, `${where}: added field`);
  const id = created.data!.id;
  const read = await client.GET("/v2/customers/{id}", { params: { path: { id } } });
  assert.equal(readHeaders(read.response).etag, `"${read.data?.version}"`);
  const listed = await client.GET("/v2/customers", { params: { query: { limit: 1 } } });
  assert.equal(listed.response.status, 200);
  if (adds) assert.ok((listed.data!.data[0] as Json).added_later, `${where}: added field in data`);
  const missing = id.slice(0, -1) + (id.endsWith("0") ? "1" : "0");
  expectError(await client.GET("/v2/customers/{id}", { params: { path: { id: missing } } }), 404, "resource_not_found", "404");
  expectError(await client.POST("/v2/customers", { body: { name: "Bad", email: "not-an-email" } }), 400, "parameter_invalid", "400");
  const stale = await client.PUT("/v2/customers/{id}", { params: { path: { id }, header: { "If-Match": `"7"` } }, body });
  expectError(stale, 412, "precondition_failed", "412");
  const limited = createClient<V2>({ baseUrl, headers: { Authorization: `Bearer ${limitedToken}` } });
  limited.use(conformance);
  await over429(() => limited.GET("/v2/customers", { params: { query: { limit: 1 } } }));
  await client.DELETE("/v2/customers/{id}", { params: { path: { id } } });
}

await (version === "v1" ? v1() : v2());
console.log(`${where}: ${checked} responses fit the document; ${version === "v2" ? "ETag, " : ""}rate-limit headers, `
  + `error codes, 429 and Retry-After${adds ? ", added fields kept" : ""}`
  + `${mode === "codes" ? ", unknown codes handled by status" : ""}: ok`);

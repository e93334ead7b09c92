// Drives a TypeScript client (openapi-typescript + openapi-fetch) generated from a *read* token's
// tailored document (API.md §6): its types have no write operation (tsc proves it through the
// `@ts-expect-error` lines: if the document had them, those lines would compile and tsc would
// fail), and its reads and GET /v2/token work.
// Usage: tsx read_client_check.ts BASE_URL READ_TOKEN
import assert from "node:assert/strict";
import createClient from "openapi-fetch";
import type { paths } from "./generated/read-v2.js";

const [baseUrl, token] = process.argv.slice(2);
const client = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${token}` } });

// Never called: only type-checked.
export function writesDoNotExist(): void {
  // @ts-expect-error a read token's document has no POST /v2/customers
  void client.POST("/v2/customers", { body: { name: "x", email: "x@example.com" } });
  // @ts-expect-error nor DELETE /v2/customers/{id}
  void client.DELETE("/v2/customers/{id}", { params: { path: { id: "cus_x" } } });
}

const page = await client.GET("/v2/customers", { params: { query: { limit: 1 } } });
assert.equal(page.response.status, 200);
const me = await client.GET("/v2/token");
assert.equal(me.response.status, 200);
assert.equal(me.data?.scope, "read");
assert.equal(me.data?.name, null);
assert.equal(me.data?.rate_limit.remaining, Number(page.response.headers.get("x-ratelimit-remaining")));
console.log("typescript client from a read token's document: no write operations in its types, list, GET /v2/token: ok");

// Drives a client made with openapi-typescript (types) + openapi-fetch (runtime)
// from the served documents, against a live server.
// Usage: tsx client_check.ts VERSION BASE_URL TOKEN
// Create, read, update, list two pages, delete, then a 404 read handled as the typed error.
import assert from "node:assert/strict";
import createClient from "openapi-fetch";
import type { paths as V1 } from "./generated/v1.js";
import type { paths as V2 } from "./generated/v2.js";

const [version, baseUrl, token] = process.argv.slice(2);
const headers = { Authorization: `Bearer ${token}` };
const run = Math.random().toString(36).slice(2, 10);

async function v1(): Promise<void> {
  const client = createClient<V1>({ baseUrl, headers });
  const ids: string[] = [];
  for (let n = 0; n < 3; n++) {
    const { data, response } = await client.POST("/v1/customers", {
      body: { name: ` Ada ${run} ${n} `, email: `ada.${run}.${n}@example.com`, phone: null },
      params: { header: { "Idempotency-Key": `ts-${run}-${n}` } },
    });
    assert.equal(response.status, 201);
    assert.ok(data);
    assert.equal(data.name, `Ada ${run} ${n}`);
    ids.push(data.id);
  }
  const id = ids[0];
  const read = await client.GET("/v1/customers/{id}", { params: { path: { id } } });
  assert.equal(read.data?.id, id);
  const created: number | undefined = read.data?.created;
  assert.ok(typeof created === "number");

  const put = await client.PUT("/v1/customers/{id}", {
    params: { path: { id } },
    body: { name: `Ada ${run} renamed`, email: `ada.${run}.0@example.com` },
  });
  assert.equal(put.data?.name, `Ada ${run} renamed`);

  const total = (await client.GET("/v1/customers", { params: { query: { limit: 1 } } })).data!.total;
  const page1 = await client.GET("/v1/customers", { params: { query: { limit: 2, offset: total - 3 } } });
  const page2 = await client.GET("/v1/customers", { params: { query: { limit: 2, offset: total - 1 } } });
  assert.deepEqual([...page1.data!.data, ...page2.data!.data].map((c) => c.id), ids);

  const del = await client.DELETE("/v1/customers/{id}", { params: { path: { id } } });
  assert.equal(del.response.status, 204);

  const missing = await client.GET("/v1/customers/{id}", { params: { path: { id } } });
  assert.equal(missing.response.status, 404);
  assert.equal(missing.data, undefined);
  const code: string | undefined = missing.error?.error.code;
  assert.equal(code, "resource_not_found");
  assert.equal(missing.error?.error.request_id, missing.response.headers.get("x-request-id"));
}

async function v2(): Promise<void> {
  const client = createClient<V2>({ baseUrl, headers });
  const ids: string[] = [];
  for (let n = 0; n < 3; n++) {
    const { data, response } = await client.POST("/v2/customers", {
      body: {
        name: `Ada ${run} ${n}`,
        email: `ada.${run}.${n}@example.com`,
        address: { city: "London", country: "GB" },
        metadata: { crm_id: String(n) },
      },
    });
    assert.equal(response.status, 201);
    assert.ok(data);
    assert.equal(response.headers.get("etag"), `"${data.version}"`);
    ids.push(data.id);
  }
  const id = ids[0];
  const read = await client.GET("/v2/customers/{id}", { params: { path: { id } } });
  assert.equal(read.data?.address?.country, "GB");
  assert.equal(read.data?.metadata.crm_id, "0");

  const put = await client.PUT("/v2/customers/{id}", {
    params: { path: { id }, header: { "If-Match": `"1"` } },
    body: { name: `Ada ${run} renamed`, email: `ada.${run}.0@example.com` },
  });
  assert.equal(put.data?.version, 2);
  assert.equal(put.data?.address, null);
  const stale = await client.PUT("/v2/customers/{id}", {
    params: { path: { id }, header: { "If-Match": `"1"` } },
    body: { name: "Nobody", email: "nobody@example.com" },
  });
  assert.equal(stale.response.status, 412);
  assert.equal(stale.error?.error.code, "precondition_failed");

  const before = id.slice(0, -1) + String.fromCharCode(id.charCodeAt(id.length - 1) - 1);
  const page1 = await client.GET("/v2/customers", { params: { query: { limit: 2, starting_after: before } } });
  assert.equal(page1.data?.has_more, true);
  assert.match(page1.response.headers.get("link") ?? "", /rel="next"/);
  const last = page1.data!.data[1].id;
  const page2 = await client.GET("/v2/customers", { params: { query: { limit: 2, starting_after: last } } });
  assert.deepEqual([...page1.data!.data, ...page2.data!.data.slice(0, 1)].map((c) => c.id), ids);

  const del = await client.DELETE("/v2/customers/{id}", { params: { path: { id } } });
  assert.equal(del.response.status, 204);

  const missing = await client.GET("/v2/customers/{id}", { params: { path: { id } } });
  assert.equal(missing.response.status, 404);
  assert.equal(missing.error?.error.code, "resource_not_found");
  assert.equal(missing.error?.error.type, "invalid_request_error");
}

await (version === "v1" ? v1() : v2());
console.log(`typescript client ${version}: create, read, update, two pages, delete, typed 404: ok`);

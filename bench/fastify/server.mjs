// The comparison point for bench/run.sh: Node.js Fastify + better-sqlite3 doing
// the same authenticated, rate-limited read as `GET /v2/customers/{id}`, on the
// same SQLite file: bearer token hashed with SHA-256 and cached, a fixed-window
// counter per token with the X-RateLimit-* headers, a request id, one
// primary-key read, the v2 JSON and its ETag. Written the way a team would
// write it by hand in Fastify, with prepared statements and no extra plugins.
//
// Usage: node server.mjs SQLITE_PATH PORT
import { createHash, randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import Fastify from 'fastify';

const [path, port] = process.argv.slice(2);
const db = new Database(path, { readonly: true, fileMustExist: true });
db.pragma('journal_mode = WAL');

const findToken = db.prepare(
  'SELECT id, account_id, scope, rate_limit, rate_window_secs, revoked_at FROM tokens WHERE secret_hash = ?');
const findCustomer = db.prepare('SELECT * FROM customers WHERE account_id = ? AND id = ?');

const TOKEN_TTL_MS = 2000;
const tokens = new Map(); // token hash (hex) -> { principal, fetched }
const windows = new Map(); // token id -> { index, count }

const rfc3339 = (secs) => new Date(secs * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
const problem = (reply, status, code, message, requestId) =>
  reply.code(status).send({ error: { code, message, request_id: requestId } });

const app = Fastify({ logger: false });

app.get('/v2/customers/:id', (request, reply) => {
  const requestId = 'req_' + randomBytes(15).toString('base64url').slice(0, 20);
  reply.header('x-request-id', requestId);
  const auth = request.headers.authorization;
  if (!auth || !auth.startsWith('Bearer ')) {
    return problem(reply, 401, 'unauthorized', 'a bearer token is required', requestId);
  }
  const hash = createHash('sha256').update(auth.slice(7)).digest();
  const key = hash.toString('hex');
  let entry = tokens.get(key);
  const now = Date.now();
  if (!entry || now - entry.fetched > TOKEN_TTL_MS) {
    const row = findToken.get(hash);
    entry = { principal: row && row.revoked_at == null ? row : null, fetched: now };
    tokens.set(key, entry);
  }
  const token = entry.principal;
  if (!token) return problem(reply, 401, 'unauthorized', 'the token is not valid', requestId);

  const limit = token.rate_limit ?? 100;
  const windowMs = (token.rate_window_secs ?? 60) * 1000;
  const index = Math.floor(now / windowMs);
  let counter = windows.get(token.id);
  if (!counter || counter.index !== index) {
    counter = { index, count: 0 };
    windows.set(token.id, counter);
  }
  counter.count += 1;
  const reset = Math.ceil(((index + 1) * windowMs - now) / 1000);
  reply.header('x-ratelimit-limit', limit);
  reply.header('x-ratelimit-remaining', Math.max(0, limit - counter.count));
  reply.header('x-ratelimit-reset', reset);
  if (counter.count > limit) {
    reply.header('retry-after', reset);
    return problem(reply, 429, 'rate_limited', 'too many requests', requestId);
  }

  const row = findCustomer.get(token.account_id, request.params.id);
  if (!row) return problem(reply, 404, 'not_found', 'no such customer', requestId);
  reply.header('etag', `"${row.version}"`);
  return {
    id: row.id,
    name: row.name,
    email: row.email,
    phone: row.phone,
    address: row.has_address
      ? {
          line1: row.address_line1, line2: row.address_line2, city: row.address_city,
          region: row.address_region, postal_code: row.address_postal_code, country: row.address_country,
        }
      : null,
    metadata: JSON.parse(row.metadata),
    created_at: rfc3339(row.created_at),
    updated_at: rfc3339(row.updated_at),
    version: row.version,
  };
});

await app.listen({ host: '127.0.0.1', port: Number(port) });
console.log(`fastify listening on http://127.0.0.1:${port}`);

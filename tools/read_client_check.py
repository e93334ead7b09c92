"""Drives a Python client generated from a *read* token's tailored document (API.md §6).

Usage: python read_client_check.py BASE_URL READ_TOKEN DOCUMENT PUBLIC_URL
  The package generated from DOCUMENT (GET /v2/openapi.json sent with READ_TOKEN) is on PYTHONPATH
  as clientele_v2.

The document names PUBLIC_URL as its one server and states the token's rate limit; the client has
no create, replace or delete methods (they could only ever answer 403), and its methods that read
work: list customers, read one, and GET /v2/token, which reports the read scope and counts toward
no limit. Its events and webhook endpoints are read-only too (API.md §8).
"""

import importlib
import importlib.util
import json
import sys


def main() -> None:
    base_url, token, document, public_url = sys.argv[1:5]
    doc = json.load(open(document))
    assert doc["servers"] == [{"url": public_url}], doc.get("servers")
    assert "Its scope is `read`" in doc["info"]["description"], doc["info"]["description"][-400:]
    operations = sorted(f"{method} {path}" for path, item in doc["paths"].items() for method in item)
    assert operations == [
        "get /v2/customers",
        "get /v2/customers/{id}",
        "get /v2/events",
        "get /v2/events/{id}",
        "get /v2/token",
        "get /v2/webhook_endpoints",
        "get /v2/webhook_endpoints/{id}",
    ], operations

    for name in ("create_customer", "replace_customer", "delete_customer"):
        assert importlib.util.find_spec(f"clientele_v2.api.customers.{name}") is None, f"the read client has {name}"
    client_mod = importlib.import_module("clientele_v2")
    list_customers = importlib.import_module("clientele_v2.api.customers.list_customers")
    get_customer = importlib.import_module("clientele_v2.api.customers.get_customer")
    get_token = importlib.import_module("clientele_v2.api.tokens.get_token")

    client = client_mod.AuthenticatedClient(base_url=base_url, token=token, raise_on_unexpected_status=True)
    page = list_customers.sync_detailed(client=client, limit=2)
    assert page.status_code == 200, page
    remaining = int(page.headers["x-ratelimit-remaining"])
    if page.parsed.data:
        first = get_customer.sync(page.parsed.data[0].id, client=client)
        assert first.id == page.parsed.data[0].id
        remaining -= 1

    about = get_token.sync_detailed(client=client)
    assert about.status_code == 200, about
    me = about.parsed
    assert me.scope == "read" and me.id.startswith("tok_"), me
    assert me.name is None and me.expires_at is None, me
    assert me.rate_limit.remaining == remaining, (me.rate_limit, remaining)  # GET /v2/token counted nothing
    assert f"{me.rate_limit.limit} requests per window of {me.rate_limit.window_seconds} seconds" in \
        doc["info"]["description"]
    again = get_token.sync_detailed(client=client)
    assert again.parsed.rate_limit.remaining == remaining, "GET /v2/token must not count"
    print(f"python client from a read token's document: no write methods, list, read, GET /v2/token "
          f"(scope read, {me.rate_limit.limit}/{me.rate_limit.window_seconds}s, uncounted), server {public_url}: ok")


if __name__ == "__main__":
    main()

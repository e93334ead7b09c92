"""schemathesis hooks for scripts/api-tools.sh, loaded with SCHEMATHESIS_HOOKS=tools/schemathesis_hooks.py.

Both run in `before_call`, just before a generated request is sent:

1. A fresh `Idempotency-Key` per call. Hypothesis draws keys from a small space ("0", "00", ...),
   so two generated POSTs often share a key with different bodies, and the server then rightly
   answers `422 idempotency_key_reused` (API.md §3), which `positive_data_acceptance` would count
   against a valid request. Every *valid* key is replaced with a unique one; invalid keys (empty,
   too long, non-printable, surrounding spaces) are left alone, so the negative checks still see
   the server reject them with `400`.

2. No header value that breaks its own documented schema in a case labelled positive.
   schemathesis 4.32's coverage phase builds header values from letters and digits only; for a
   header whose `pattern` needs other characters (`If-Match` / `If-None-Match`: `*` or quoted
   ETags) it cannot make a valid value, sends `0` instead and still calls the case positive, so
   the server's correct `400` shows as "schema-valid request rejected". Such an optional header
   is dropped from that one request, which is then as valid as schemathesis meant it to be.
   Negative cases keep their invalid values.

3. Room for one more webhook endpoint. An account has at most 16 (API.md §8), so after 16
   generated creations the server rightly answers the 17th `400 parameter_invalid`, which
   `positive_data_acceptance` would count against a valid request. Before each
   `POST /v2/webhook_endpoints`, the oldest endpoints are deleted (through the API, with the same
   token) down to 15. The newest ones stay, so the stateful phase still finds what it created.
"""

from __future__ import annotations

import json
import os
import re
import urllib.request
import uuid

import jsonschema
import schemathesis

IDEMPOTENCY_KEY = "idempotency-key"
# The documented parameter: 1–255 printable ASCII characters, no surrounding spaces.
VALID_KEY = re.compile(r"[!-~](?:[ -~]*[!-~])?")


def _fresh_idempotency_key(headers: dict) -> None:
    for name, value in list(headers.items()):
        if name.lower() != IDEMPOTENCY_KEY:
            continue
        if isinstance(value, str) and len(value) <= 255 and VALID_KEY.fullmatch(value):
            headers[name] = f"schemathesis-{uuid.uuid4()}"


def _documented_headers(case) -> dict[str, tuple[bool, dict]]:
    """Header name (lower case) → (required, schema) as the document declares them."""
    documented = {}
    for parameter in case.operation.headers:
        definition = getattr(parameter, "definition", None) or {}
        schema = definition.get("schema")
        if isinstance(schema, dict):
            documented[str(definition.get("name", "")).lower()] = (bool(definition.get("required")), schema)
    return documented


def _is_valid(value, schema: dict) -> bool:
    try:
        return jsonschema.Draft202012Validator(schema).is_valid(value)
    except Exception:  # noqa: BLE001 - a schema this check cannot judge ($ref, ...): keep the value
        return True


def _drop_invalid_optional_headers(case) -> None:
    meta = case.meta
    if meta is None or meta.generation.mode.value != "positive":
        return
    documented = _documented_headers(case)
    for name, value in list(case.headers.items()):
        if name.lower() == "authorization" or name.lower() not in documented:
            continue
        required, schema = documented[name.lower()]
        if not required and not _is_valid(value, schema):
            del case.headers[name]


ENDPOINTS = "/v2/webhook_endpoints"
MAX_ENDPOINTS = 16


def _api(method: str, path: str):
    request = urllib.request.Request(
        os.environ["CLIENTELE_API_TOOLS_BASE"] + path,
        method=method,
        headers={"Authorization": "Bearer " + os.environ["CLIENTELE_API_TOOLS_TOKEN"]},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
    return json.loads(body) if body else None


def _room_for_one_more_endpoint(case) -> None:
    if case.method.upper() != "POST" or case.path != ENDPOINTS:
        return
    endpoints = _api("GET", ENDPOINTS)["data"]
    for endpoint in endpoints[: max(0, len(endpoints) - (MAX_ENDPOINTS - 1))]:
        _api("DELETE", f"{ENDPOINTS}/{endpoint['id']}")


@schemathesis.hook
def before_call(context, case, kwargs):
    _room_for_one_more_endpoint(case)
    if not case.headers:
        return
    _fresh_idempotency_key(case.headers)
    _drop_invalid_optional_headers(case)

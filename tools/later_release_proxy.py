"""A stand-in for a later release of the server, for the evolution test (scripts/api-tools.sh).

Usage: python later_release_proxy.py UPSTREAM_URL PORT MODE
  MODE fields: every JSON response gets a field no document has yet ("added_later"), on the body,
               on each item of a list's "data" and on an error's "error" object; as a later release
               may add response fields within a version (API.md §6).
  MODE codes:  as "fields", and every error's "code" and "type" are replaced by values no release
               has yet ("code_added_later", "type_added_later"); as a later release may add codes
               (API.md §4).
  MODE drop:FIELD / rename:FIELD:NEW: a *breaking* release, for the evolution test's self-check:
               every customer (a body or list item whose id starts with `cus_`) loses FIELD, or has it
               renamed to NEW. The evolution test must fail through these.
Everything else (status, headers, other fields) is passed through unchanged. Prints "ready" once
it listens on 127.0.0.1:PORT.
"""

import http.client
import json
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

UPSTREAM = urllib.parse.urlsplit(sys.argv[1])
PORT = int(sys.argv[2])
MODE = sys.argv[3]
assert MODE in ("fields", "codes") or MODE.startswith(("drop:", "rename:")), MODE
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host"}
ADDED = {"since": "a later release", "note": "a field this client's document does not have"}


def breaking(customer):
    if not (isinstance(customer, dict) and str(customer.get("id", "")).startswith("cus_")):
        return customer
    customer = dict(customer)
    _, field, *new = MODE.split(":")
    value = customer.pop(field, None)
    if new:
        customer[new[0]] = value
    return customer


def evolve(body):
    if not isinstance(body, dict):
        return body
    if MODE.startswith(("drop:", "rename:")):
        body = breaking(body)
        if isinstance(body.get("data"), list):
            body["data"] = [breaking(item) for item in body["data"]]
        return body
    body = dict(body, added_later=ADDED)
    if isinstance(body.get("data"), list):
        body["data"] = [dict(item, added_later=ADDED) if isinstance(item, dict) else item for item in body["data"]]
    if isinstance(body.get("error"), dict):
        error = dict(body["error"], added_later=ADDED)
        if MODE == "codes":
            error["code"] = "code_added_later"
            error["type"] = "type_added_later"
        body["error"] = error
    return body


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def forward(self):
        length = int(self.headers.get("content-length") or 0)
        payload = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP | {"accept-encoding"}}
        connection = http.client.HTTPConnection(UPSTREAM.hostname, UPSTREAM.port, timeout=30)
        connection.request(self.command, self.path, body=payload, headers=headers)
        upstream = connection.getresponse()
        body = upstream.read()
        if body and (upstream.getheader("content-type") or "").startswith("application/json"):
            body = json.dumps(evolve(json.loads(body))).encode()
        self.send_response(upstream.status)
        for name, value in upstream.getheaders():
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        connection.close()

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = forward

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", PORT), Proxy)
print("ready", flush=True)
server.serve_forever()

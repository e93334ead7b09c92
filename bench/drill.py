#!/usr/bin/env python3
"""Hostile-connection drill (API.md §1, "Slow, idle and hostile connections").

Opens N slow connections (a request head sent one byte a second, reopened
whenever the server closes it) and N idle keep-alive connections (one request,
then silence, reopened when closed) against a server, then measures ordinary
clients (a new connection per request) while the attack holds. Reports whether
the ordinary clients were served, their p50/p99 latency, and the server's RSS.

    bench/drill.py --binary target/release/clientele [--connections 5000] [-- SERVE_ARGS...]
    bench/drill.py --url http://127.0.0.1:8080 --pid PID [--token clt_...] [--connections 5000]

With --binary it starts `clientele serve` itself on a fresh SQLite file
(default settings plus SERVE_ARGS) and stops it at the end. It raises its own
open-file limit (and so the server's, when it starts it) to the hard limit.
Standard library only; loopback only.
"""

import argparse
import asyncio
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse


def raise_file_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def percentile(values, fraction):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


class Attack:
    """N slow heads and N idle keep-alive connections, each reopened when the server closes it."""

    def __init__(self, host, port, count):
        self.host, self.port, self.count = host, port, count
        self.open_slow = 0
        self.open_idle = 0
        self.closed_by_server = 0
        self.connect_failures = 0
        self.running = True

    async def connect(self):
        """One connection to the server, or None (counted, after a second's pause) when it fails."""
        try:
            return await asyncio.wait_for(asyncio.open_connection(self.host, self.port), 15)
        except (OSError, asyncio.TimeoutError):
            self.connect_failures += 1
            await asyncio.sleep(1)
            return None

    async def slow(self, index):
        await asyncio.sleep(index * 0.0005)  # spread the connects over a few seconds
        while self.running:
            connected = await self.connect()
            if connected is None:
                continue
            reader, writer = connected
            self.open_slow += 1
            try:
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: drill\r\nX-Slow: ")
                await writer.drain()
                while self.running:
                    # One byte a second, and notice at once when the server closes.
                    try:
                        data = await asyncio.wait_for(reader.read(1), 1)
                        if not data:
                            break
                    except asyncio.TimeoutError:
                        pass
                    writer.write(b"a")
                    await writer.drain()
            except (OSError, ConnectionError):
                pass
            finally:
                self.open_slow -= 1
                if self.running:
                    self.closed_by_server += 1
                writer.close()

    async def idle(self, index):
        await asyncio.sleep(index * 0.0005)
        while self.running:
            connected = await self.connect()
            if connected is None:
                continue
            reader, writer = connected
            self.open_idle += 1
            try:
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: drill\r\n\r\n")
                await writer.drain()
                while self.running:
                    data = await reader.read(65536)  # the response, then the close
                    if not data:
                        break
            except (OSError, ConnectionError):
                pass
            finally:
                self.open_idle -= 1
                if self.running:
                    self.closed_by_server += 1
                writer.close()

    def start(self):
        self.tasks = [asyncio.ensure_future(self.slow(i)) for i in range(self.count)]
        self.tasks += [asyncio.ensure_future(self.idle(i)) for i in range(self.count)]

    async def stop(self):
        self.running = False
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def ordinary_request(host, port, path, token, timeout):
    """One request on a new connection; returns (status or None, seconds)."""
    started = time.perf_counter()
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    request = f"GET {path} HTTP/1.1\r\nHost: drill\r\n{auth}Connection: close\r\n\r\n".encode()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        writer.write(request)
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), timeout)
        writer.close()
        match = re.match(rb"HTTP/1\.1 (\d{3})", response)
        return (int(match.group(1)) if match else None), time.perf_counter() - started
    except (OSError, asyncio.TimeoutError, ConnectionError):
        return None, time.perf_counter() - started


async def ordinary_clients(host, port, path, token, clients, requests, timeout):
    latencies, failures = [], {}

    async def client():
        for _ in range(requests):
            status, took = await ordinary_request(host, port, path, token, timeout)
            if status == 200:
                latencies.append(took)
            else:
                failures[status or "no answer"] = failures.get(status or "no answer", 0) + 1

    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, failures


def report(label, latencies, failures, total):
    served = len(latencies)
    failed = ", ".join(f"{count} {status}" for status, count in failures.items()) or "none"
    print(
        f"  {label}: {served}/{total} served with 200 (failed: {failed}), "
        f"p50 {percentile(latencies, 0.5) * 1000:.2f} ms, p99 {percentile(latencies, 0.99) * 1000:.2f} ms, "
        f"max {max(latencies, default=float('nan')) * 1000:.2f} ms"
    )


def start_server(binary, serve_args):
    work = tempfile.mkdtemp(prefix="clientele-drill-")
    # The ordinary clients share the bootstrap token: its limit must not be what stops them.
    command = [binary, "--database-url", f"sqlite://{work}/drill.db", "serve", "--listen", "127.0.0.1:0",
               "--default-rate-limit", "1000000/1h", *serve_args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLIENTELE_")}
    env["CLIENTELE_LOG"] = "warn"
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=open(f"{work}/server.log", "w"), env=env, text=True)
    token = None
    for line in process.stdout:
        found = re.search(r"clt_[A-Za-z0-9]+", line)
        if found:
            token = found.group(0)
        if line.startswith("Clientele listening on http://"):
            return process, line.strip().rsplit("/", 1)[-1], token, work
    sys.exit(f"the server did not start; see {work}/server.log")


async def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=5000, help="N slow and N idle connections (default 5000)")
    parser.add_argument("--binary", help="start this clientele binary instead of using --url")
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="a running server (with --pid for its RSS)")
    parser.add_argument("--pid", type=int, help="the running server's process id, for its RSS")
    parser.add_argument("--token", help="a token: ordinary clients then GET /v2/customers?limit=1")
    parser.add_argument("--clients", type=int, default=8, help="concurrent ordinary clients (default 8)")
    parser.add_argument("--requests", type=int, default=250, help="requests per ordinary client (default 250)")
    parser.add_argument("--hold", type=float, default=15, help="seconds the attack holds before measuring (default 15)")
    parser.add_argument("--timeout", type=float, default=10, help="an ordinary request slower than this failed")
    parser.add_argument("serve_args", nargs="*", help="after --: extra `serve` arguments with --binary")
    args = parser.parse_args()

    limit = raise_file_limit()
    process = None
    if args.binary:
        process, address, token, work = start_server(args.binary, args.serve_args)
        host, port = address.rsplit(":", 1)
        pid, args.token = process.pid, args.token or token
        print(f"started {args.binary} on {address} (pid {pid}, logs in {work}/server.log)")
    else:
        parsed = urllib.parse.urlsplit(args.url)
        host, port, pid = parsed.hostname, parsed.port or 80, args.pid
    port = int(port)
    path = "/v2/customers?limit=1" if args.token else "/healthz"
    total = args.clients * args.requests
    print(f"open-file limit {limit}; {args.connections} slow + {args.connections} idle connections; "
          f"ordinary clients: {args.clients} x {args.requests} GET {path}, a new connection each")

    try:
        print(f"server RSS before: {rss_mib(pid) or float('nan'):.1f} MiB")
        latencies, failures = await ordinary_clients(host, port, path, args.token, args.clients, args.requests, args.timeout)
        report("before the attack", latencies, failures, total)

        attack = Attack(host, port, args.connections)
        attack.start()
        started = time.monotonic()
        peak_rss = 0
        while time.monotonic() - started < args.hold:
            await asyncio.sleep(1)
            peak_rss = max(peak_rss, rss_mib(pid) or 0)
        print(f"attack after {args.hold:.0f} s: {attack.open_slow} slow and {attack.open_idle} idle connections open, "
              f"{attack.closed_by_server} closed by the server so far, {attack.connect_failures} connects failed")
        latencies, failures = await ordinary_clients(host, port, path, args.token, args.clients, args.requests, args.timeout)
        peak_rss = max(peak_rss, rss_mib(pid) or 0)
        report("during the attack", latencies, failures, total)
        print(f"server RSS during the attack: peak {peak_rss:.1f} MiB")
        verdict = "SERVED" if not failures else "NOT ALL SERVED"
        print(f"verdict: ordinary clients {verdict} during the attack")
        await attack.stop()
    finally:
        if process:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()
            print(f"server exit status after SIGTERM: {process.returncode}")


if __name__ == "__main__":
    asyncio.run(main())

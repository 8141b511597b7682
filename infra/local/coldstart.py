#!/usr/bin/env python3
"""Cold start of Lambda function binaries, measured the way Lambda runs them.

For each binary: a minimal Lambda Runtime API (the three calls a custom runtime makes) on a free
port, the binary started with AWS_LAMBDA_RUNTIME_API pointing at it, one API Gateway v2 event
(`GET /openapi.json`, which every function serves), and the time from process start to the
function's response, plus its resident memory then. The binary's init (configuration, pool,
clients, the model where it loads one) runs before its first `next` call, so the figure is
Lambda's Init Duration plus one warm request.

Usage: coldstart.py [--runs N] BINARY... (the environment names the stack: DATABASE_URL, …)
Prints one JSON object per binary: name, zip_bytes, init_ms (median of runs), rss_mb.
"""

import argparse
import http.server
import json
import os
import socketserver
import statistics
import subprocess
import sys
import threading
import time
import zipfile
import tempfile

EVENT = {
    "version": "2.0",
    "routeKey": "GET /openapi.json",
    "rawPath": "/openapi.json",
    "rawQueryString": "",
    "headers": {"accept": "application/json", "host": "localhost"},
    "requestContext": {
        "accountId": "123456789012",
        "apiId": "local",
        "domainName": "localhost",
        "domainPrefix": "local",
        "http": {
            "method": "GET",
            "path": "/openapi.json",
            "protocol": "HTTP/1.1",
            "sourceIp": "127.0.0.1",
            "userAgent": "coldstart",
        },
        "requestId": "coldstart",
        "routeKey": "GET /openapi.json",
        "stage": "$default",
        "time": "01/Dec/2026:00:00:00 +0000",
        "timeEpoch": 1796083200000,
    },
    "isBase64Encoded": False,
}


class Runtime:
    """One invocation's worth of the Lambda Runtime API."""

    def __init__(self):
        self.served = False
        self.done = threading.Event()
        self.status = None
        self.error = None
        runtime = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path.endswith("/invocation/next") and not runtime.served:
                    runtime.served = True
                    body = json.dumps(EVENT).encode()
                    self.send_response(200)
                    self.send_header("Lambda-Runtime-Aws-Request-Id", "req-1")
                    self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30000))
                    self.send_header(
                        "Lambda-Runtime-Invoked-Function-Arn",
                        "arn:aws:lambda:us-east-1:123456789012:function:coldstart",
                    )
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                else:
                    # Later `next` calls wait (as Lambda freezes the environment).
                    runtime.done.wait(30)
                    self.send_response(500)
                    self.end_headers()

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if "/response" in self.path:
                    try:
                        runtime.status = json.loads(body).get("statusCode")
                    except ValueError:
                        runtime.status = "?"
                else:
                    runtime.error = body.decode(errors="replace")[:300]
                self.send_response(202)
                self.end_headers()
                self.wfile.write(b"{}")
                runtime.at = time.monotonic()
                runtime.done.set()

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def zip_bytes(binary):
    with tempfile.TemporaryDirectory() as d:
        z = os.path.join(d, "bootstrap.zip")
        with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.write(binary, "bootstrap")
        return os.path.getsize(z)


def once(binary):
    rt = Runtime()
    env = dict(os.environ)
    env.update(
        AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{rt.port}",
        AWS_LAMBDA_FUNCTION_NAME=f"coldstart-{os.path.basename(binary)}",
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE="1024",
        AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
        LOG_FORMAT=env.get("LOG_FORMAT", "json"),
    )
    start = time.monotonic()
    proc = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    answered = rt.done.wait(60)
    rss = rss_mb(proc.pid)
    proc.kill()
    _, err = proc.communicate()
    rt.server.shutdown()
    if not answered or rt.error:
        raise SystemExit(
            f"{binary}: no answer ({rt.error or 'timeout'}); stderr: {err.decode(errors='replace')[-400:]}"
        )
    return (rt.at - start) * 1000, rss, rt.status


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("binaries", nargs="+")
    a = ap.parse_args()
    for b in a.binaries:
        runs = [once(b) for _ in range(a.runs)]
        print(
            json.dumps(
                {
                    "name": os.path.basename(b),
                    "zip_bytes": zip_bytes(b),
                    "binary_bytes": os.path.getsize(b),
                    "init_ms": round(statistics.median(r[0] for r in runs), 1),
                    "init_ms_min": round(min(r[0] for r in runs), 1),
                    "rss_mb": max((r[1] or 0) for r in runs),
                    "status": runs[-1][2],
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(main())

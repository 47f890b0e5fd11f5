"""hermes-testbed forbidden server: stands for "somewhere agents must never reach".

Test support only: never part of the hermes-infra release. Python 3 standard library only.

Listens on every port in FORBIDDEN_PORTS (default 80,443,8080). Any request gets 200
"FORBIDDEN-REACHED" and counts as a hit, except GET /__hits, which returns
{"hits": N, "connections": C, "requests": [...]}: C counts every TCP connection accepted
(so a TLS handshake or a bare connect counts too), including the test's own /__hits queries.
"""

import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORTS = [int(p) for p in os.environ.get("FORBIDDEN_PORTS", "80,443,8080").split(",") if p]
MAX_RECORDED = 1000
BODY = b"FORBIDDEN-REACHED\n"

STATE = {"hits": 0, "connections": 0, "requests": []}
LOCK = threading.Lock()


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def process_request(self, request, client_address):
        with LOCK:
            STATE["connections"] += 1
        super().process_request(request, client_address)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    server_version = "hermes-testbed-forbidden/1"
    timeout = 10

    def parse_request(self):
        ok = super().parse_request()
        if not (ok and self.command == "GET" and self.path == "/__hits"):
            line = self.raw_requestline[:200].decode("latin-1").rstrip("\r\n")
            with LOCK:
                STATE["hits"] += 1
                STATE["requests"].append(
                    {
                        "request_line": line,
                        "host": self.headers.get("Host") if ok else None,
                        "client": self.client_address[0],
                        "port": self.server.server_address[1],
                        "time": time.time(),
                    }
                )
                del STATE["requests"][:-MAX_RECORDED]
        return ok

    def answer(self):
        if self.command == "GET" and self.path == "/__hits":
            with LOCK:
                data = json.dumps(STATE).encode()
            kind = "application/json"
        else:
            data, kind = BODY, "text/plain"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = answer
    do_CONNECT = answer


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    servers = [Server(("0.0.0.0", port), Handler) for port in PORTS]
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"forbidden server on {PORTS}", flush=True)
    servers[0].serve_forever()


if __name__ == "__main__":
    main()

"""hermes-testbed ACME server: Let's Encrypt's test server Pebble (Debian's `pebble` package),
with its DNS stand-in pebble-challtestsrv, for tests of certificates issued over ACME.

Test support only: never part of the hermes-infra release. Python 3 standard library, openssl (through
assets/tls.py, prepended).

At start: makes a CA and, signed by it, the certificate of Pebble's own HTTPS listener for the
name in ACME_ALIAS; starts pebble-challtestsrv (DNS on 8053, management on 8055, every name
unknown to it resolves to nothing) and Pebble (ACME directory https://ACME_ALIAS:14000/dir,
management on 15000; HTTP-01 challenges are fetched from port 80 of the name's address).
Then serves, on 8080:
  GET /ready        200 once Pebble's directory answers
  GET /listener-ca  the CA of Pebble's listener (what ACME clients must trust to talk to it)
  GET /issuer       the root Pebble issues certificates under (made anew at each start)
  POST /add-a       {"host": NAME, "addresses": [IP]}: NAME resolves to IP for Pebble
"""

import json
import os
import ssl
import subprocess
import sys
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ALIAS = os.environ.get("ACME_ALIAS", "acme.hermes.test")
WORK = "/tmp/acme"


def make_certificates():
    make_ca_and_server_cert(WORK, "hermes-testbed ACME listener CA", ALIAS, [f"DNS:{ALIAS}"])


def start_servers():
    config = {
        "pebble": {
            "listenAddress": "0.0.0.0:14000",
            "managementListenAddress": "0.0.0.0:15000",
            "certificate": f"{WORK}/server.crt",
            "privateKey": f"{WORK}/server.key",
            "httpPort": 80,
            "tlsPort": 443,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
    }
    with open(f"{WORK}/pebble.json", "w") as f:
        json.dump(config, f)
    subprocess.Popen(["pebble-challtestsrv", "-dns01", ":8053", "-management", ":8055",
                      "-http01", "", "-https01", "", "-tlsalpn01", "",
                      "-defaultIPv4", "", "-defaultIPv6", ""])
    env = dict(os.environ, PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT="0")
    subprocess.Popen(["pebble", "-config", f"{WORK}/pebble.json", "-dnsserver", "127.0.0.1:8053"],
                     env=env)


def fetch(url):
    context = ssl.create_default_context(cafile=f"{WORK}/ca.crt")
    context.check_hostname = False
    with urllib.request.urlopen(url, context=context, timeout=5) as answer:
        return answer.read()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    server_version = "hermes-testbed-acme/1"
    timeout = 10

    def answer(self, status, body, kind="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        try:
            if self.path == "/ready":
                fetch("https://127.0.0.1:14000/dir")
                self.answer(200, b"ready\n")
            elif self.path == "/listener-ca":
                with open(f"{WORK}/ca.crt", "rb") as f:
                    self.answer(200, f.read())
            elif self.path == "/issuer":
                self.answer(200, fetch("https://127.0.0.1:15000/roots/0"))
            else:
                self.answer(404, b"unknown\n")
        except Exception as e:  # the test reads the reason
            self.answer(503, f"{e}\n".encode())

    def do_POST(self):
        if self.path != "/add-a":
            self.answer(404, b"unknown\n")
            return
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        request = urllib.request.Request("http://127.0.0.1:8055/add-a", data=body, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                self.answer(answer.status, answer.read())
        except Exception as e:
            self.answer(503, f"{e}\n".encode())

    def log_message(self, *args):
        sys.stderr.write("acme: " + (args[0] % args[1:]) + "\n")


make_certificates()
start_servers()
ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()

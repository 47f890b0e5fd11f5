"""hermes-testbed image registry: Debian's `docker-registry` (the CNCF distribution registry),
with TLS from a CA of its own and basic auth (htpasswd), for tests of `image push` and of
hosts pulling by digest.

Test support only: never part of the hermes-infra release. Python 3 standard library, openssl
(through assets/tls.py, prepended), htpasswd (apache2-utils).

At start: makes a CA and, signed by it, the registry's certificate for its address on the
network (REGISTRY_IP) and REGISTRY_ALIAS; one user, REGISTRY_USER with REGISTRY_PASSWORD; then
serves the registry on 5000 (HTTPS) and, on 8080:
  GET /ready   200 once the registry answers (401 without credentials)
  GET /ca      the CA that signed its certificate (PEM)
"""

import os
import ssl
import subprocess
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WORK = "/tmp/registry"
ALIAS = os.environ.get("REGISTRY_ALIAS", "registry.hermes.test")
USER = os.environ["REGISTRY_USER"]
PASSWORD = os.environ["REGISTRY_PASSWORD"]


def own_ip():
    return subprocess.run(["hostname", "-I"], check=True, capture_output=True, text=True).stdout.split()[0]


def setup():
    os.makedirs(f"{WORK}/data", exist_ok=True)
    make_ca_and_server_cert(WORK, "hermes-testbed registry CA", ALIAS,
                            [f"DNS:{ALIAS}", f"IP:{own_ip()}"])
    htpasswd = subprocess.run(["htpasswd", "-Bbn", USER, PASSWORD], check=True,
                              capture_output=True, text=True).stdout
    with open(f"{WORK}/htpasswd", "w") as f:
        f.write(htpasswd)
    with open(f"{WORK}/config.yml", "w") as f:
        f.write(f"""version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: {WORK}/data
http:
  addr: 0.0.0.0:5000
  tls:
    certificate: {WORK}/server.crt
    key: {WORK}/server.key
auth:
  htpasswd:
    realm: hermes-testbed
    path: {WORK}/htpasswd
""")
    subprocess.Popen(["docker-registry", "serve", f"{WORK}/config.yml"])


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    server_version = "hermes-testbed-registry/1"
    timeout = 10

    def answer(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/ca":
            with open(f"{WORK}/ca.crt", "rb") as f:
                self.answer(200, f.read())
        elif self.path == "/ready":
            context = ssl.create_default_context(cafile=f"{WORK}/ca.crt")
            context.check_hostname = False
            try:
                urllib.request.urlopen("https://127.0.0.1:5000/v2/", context=context, timeout=5)
                self.answer(200, b"ready\n")
            except urllib.error.HTTPError as e:
                self.answer(200 if e.code == 401 else 503, f"{e.code}\n".encode())
            except Exception as e:
                self.answer(503, f"{e}\n".encode())
        else:
            self.answer(404, b"unknown\n")

    def log_message(self, *args):
        pass


setup()
ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()

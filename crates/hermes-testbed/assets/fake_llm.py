"""hermes-testbed fake LLM: an OpenAI-compatible chat completions server for tests.

Test support only: never part of the hermes-infra release. Python 3 standard library only.

Endpoints:
  GET  /v1/models               the one model (FAKE_LLM_MODEL)
  GET  /v1/models/<id>          that model, or 404
  POST /v1/chat/completions     the canned answer (FAKE_LLM_ANSWER); "stream": true gives
                                server-sent `chat.completion.chunk` events ending `data: [DONE]`
  POST /api/show                404 (Ollama's probe: "not Ollama")
  GET  /health                  {"status": "ok"}
  GET  /__requests              every request recorded (not /health or /__requests itself)
  DELETE /__requests            forget them
Anything else: 404 with an OpenAI-style error. With FAKE_LLM_API_KEY set, /v1/* requests
without `Authorization: Bearer <key>` get 401.
"""

import json
import os
import re
import signal
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANSWER = os.environ.get("FAKE_LLM_ANSWER", "Hello from the fake LLM.")
MODEL = os.environ.get("FAKE_LLM_MODEL", "fake-gpt")
PORT = int(os.environ.get("FAKE_LLM_PORT", "8080"))
API_KEY = os.environ.get("FAKE_LLM_API_KEY") or None
MAX_RECORDED = 1000
MAX_BODY = 8 << 20

RECORDED = []
LOCK = threading.Lock()


def pieces(text):
    """The answer as streamed deltas: words with their following whitespace."""
    return re.findall(r"\S+\s*|\s+", text) or [""]


def usage(request, completion_tokens):
    prompt_tokens = max(1, len(json.dumps(request.get("messages", []))) // 4)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def error(message, kind, code):
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hermes-testbed-fake-llm/1"
    timeout = 30

    def do_GET(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def do_PUT(self):
        self.dispatch()

    def do_PATCH(self):
        self.dispatch()

    def do_DELETE(self):
        self.dispatch()

    def do_HEAD(self):
        self.dispatch()

    def do_OPTIONS(self):
        self.dispatch()

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = b""
            while len(body) <= MAX_BODY:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
            return body
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(min(length, MAX_BODY)) if length > 0 else b""

    def send_json(self, status, value, headers=()):
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, val in headers:
            self.send_header(name, val)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def dispatch(self):
        raw = self.read_body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        path = self.path.split("?", 1)[0]
        if path not in ("/health", "/__requests"):
            with LOCK:
                RECORDED.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "authorization": "Authorization" in self.headers,
                        "body": body,
                        "time": time.time(),
                    }
                )
                del RECORDED[:-MAX_RECORDED]
        self.route(path, body)

    def route(self, path, body):
        method = self.command
        if path == "/health" and method in ("GET", "HEAD"):
            return self.send_json(200, {"status": "ok"})
        if path == "/__requests" and method == "GET":
            with LOCK:
                snapshot = list(RECORDED)
            return self.send_json(200, snapshot)
        if path == "/__requests" and method == "DELETE":
            with LOCK:
                count = len(RECORDED)
                RECORDED.clear()
            return self.send_json(200, {"cleared": count})
        if path == "/api/show":
            return self.send_json(404, {"error": "not found"})
        if path.startswith("/v1/") and API_KEY is not None:
            if self.headers.get("Authorization", "") != f"Bearer {API_KEY}":
                return self.send_json(
                    401, error("Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
                )
        if path == "/v1/models" and method == "GET":
            return self.send_json(200, {"object": "list", "data": [model()]})
        if path.startswith("/v1/models/") and method == "GET":
            if path[len("/v1/models/") :] == MODEL:
                return self.send_json(200, model())
            return self.send_json(404, error("The model does not exist.", "invalid_request_error", "model_not_found"))
        if path == "/v1/chat/completions" and method == "POST":
            return self.chat(body)
        return self.send_json(404, error(f"Unknown request URL: {method} {path}", "invalid_request_error", "unknown_url"))

    def chat(self, request):
        if not isinstance(request, dict) or not isinstance(request.get("messages"), list):
            return self.send_json(
                400, error("'messages' is a required property", "invalid_request_error", None)
            )
        ident = "chatcmpl-" + uuid.uuid4().hex[:24]
        created = int(time.time())
        model_id = request.get("model") or MODEL
        if request.get("stream"):
            return self.stream(request, ident, created, model_id)
        return self.send_json(
            200,
            {
                "id": ident,
                "object": "chat.completion",
                "created": created,
                "model": model_id,
                "system_fingerprint": None,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": ANSWER, "refusal": None},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage(request, len(pieces(ANSWER))),
            },
        )

    def stream(self, request, ident, created, model_id):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def chunk(choices, extra=None):
            event = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model_id,
                "system_fingerprint": None,
                "choices": choices,
            }
            event.update(extra or {})
            self.send_chunk(f"data: {json.dumps(event)}\n\n")

        def choice(delta, finish=None):
            return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]

        parts = pieces(ANSWER)
        chunk(choice({"role": "assistant", "content": ""}))
        for part in parts:
            chunk(choice({"content": part}))
        chunk(choice({}, "stop"))
        if (request.get("stream_options") or {}).get("include_usage"):
            chunk([], {"usage": usage(request, len(parts))})
        self.send_chunk("data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def send_chunk(self, text):
        data = text.encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


def model():
    return {"id": MODEL, "object": "model", "created": 0, "owned_by": "hermes-testbed"}


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = ThreadingHTTPServer(("0.0.0.0", PORT), Handler)
    server.daemon_threads = True
    print(f"fake LLM on :{PORT}, model {MODEL}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

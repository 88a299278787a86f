"""A stand-in for the service behind the fake `kubectl port-forward` of tests/ops/deliver/test_deploy.py.

Usage: python tests/support/fake_service.py PORT  (serves on 127.0.0.1:PORT until killed)
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = "feedc0ffee00"
EXAMPLE = {"tenure_months": 12, "contract": "one-year"}


class Handler(BaseHTTPRequestHandler):
    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        bodies = {
            "/health": {"status": "ok"},
            "/ready": {"ready": True},
            "/metadata": {"model_version": VERSION, "example": EXAMPLE},
        }
        self._send(200, bodies[self.path]) if self.path in bodies else self._send(404, {"error": "not found"})

    def do_POST(self):
        record = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        if not isinstance(record.get("tenure_months"), int):
            self._send(422, {"error": {"field": "tenure_months", "message": "must be a number"}})
            return
        self._send(
            200,
            {
                "predictions": [
                    {"prediction": 0, "probability": 0.25, "prediction_id": "p-1", "model_version": VERSION}
                ]
            },
        )

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()

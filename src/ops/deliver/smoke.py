"""Smoke-test a running inference service: the checks a deployment must pass before it is trusted.

`python -m ops.deliver.smoke URL [--model-version V]` (`make smoke URL=...`) checks /health and /ready, reads the
model version and the example record from /metadata, predicts the example (a real /predict through the
model), and sends an invalid record that must get a 4xx JSON error. With `--model-version` the served model
must be that one (the deploy workflow passes the version from the commit's model/metadata.json). A shadow model
the service was given (SHADOW_MODEL_DIR, /metadata `models.shadow`) must be loaded, not refused.
Exit status 1 when a check fails, 2 for bad arguments or an unreachable service.

Standard library only, so it runs anywhere Python does (a CI runner, a bastion host, the image itself).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from mlcore.errors import PipelineError, cli_entrypoint


@dataclass
class Check:
    name: str
    passed: bool
    detail: str = ""

    def line(self) -> str:
        return f"{'ok  ' if self.passed else 'FAIL'} {self.name}: {self.detail}"


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for a server a check is about to start)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# A client token for a service that requires one on /predict (PREDICT_TOKENS in the environment's Secret).
TOKEN_ENV = "SMOKE_TOKEN"


def http(method: str, url: str, body: Any = None, timeout: float = 10) -> tuple[int, Any]:
    """(status, parsed JSON or text); 4xx/5xx are returned, not raised. Connection errors raise OSError.
    With SMOKE_TOKEN set, requests carry it as a bearer token."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if os.environ.get(TOKEN_ENV):
        headers["Authorization"] = f"Bearer {os.environ[TOKEN_ENV]}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def wait_until_ready(url: str, timeout: float, alive: Any = None) -> float:
    """Poll GET /ready until 200; returns the seconds waited. `alive()` False aborts early (server died)."""
    started = time.monotonic()
    while True:
        if alive is not None and not alive():
            raise PipelineError(f"the server exited before {url}/ready answered")
        try:
            if http("GET", f"{url}/ready", timeout=2)[0] == 200:
                return time.monotonic() - started
        except OSError:
            pass
        if time.monotonic() - started >= timeout:
            raise PipelineError(f"{url}/ready did not answer 200 within {timeout:g}s")
        time.sleep(0.5)


def invalid_record(example: dict[str, Any]) -> dict[str, Any]:
    """The example with its first feature replaced by a value no feature accepts."""
    bad = dict(example)
    bad[next(iter(bad))] = "not-a-valid-value"
    return bad


def shadow_check(meta: dict[str, Any]) -> Check | None:
    """A configured shadow model must have loaded (app/shadow.py); None when the service runs none."""
    models = meta.get("models")
    shadow = models.get("shadow") if isinstance(models, dict) else None
    if not isinstance(shadow, dict) or shadow.get("status", "none") == "none":
        return None
    detail = f"shadow {shadow.get('model_version')!r} {shadow.get('status')}"
    if shadow.get("reason"):
        detail += f": {shadow['reason']}"
    return Check("the configured shadow model is loaded", shadow.get("status") == "loaded", detail)


def check_service(url: str, expected_version: str | None = None) -> list[Check]:
    """Health, readiness, metadata, a real prediction of the example record, and an invalid record's 4xx."""
    url = url.rstrip("/")
    checks = []
    status, _ = http("GET", f"{url}/health")
    checks.append(Check("GET /health is 200", status == 200, f"status {status}"))
    status, _ = http("GET", f"{url}/ready")
    checks.append(Check("GET /ready is 200", status == 200, f"status {status}"))
    status, meta = http("GET", f"{url}/metadata")
    meta = meta if isinstance(meta, dict) else {}
    version = meta.get("model_version")
    checks.append(
        Check(
            "GET /metadata names the model version",
            status == 200 and bool(version),
            f"status {status}, model_version {version!r}",
        )
    )
    if expected_version:
        checks.append(
            Check(
                "the served model is the expected one",
                version == expected_version,
                f"served {version!r}, expected {expected_version!r}",
            )
        )
    shadow = shadow_check(meta)
    if shadow is not None:
        checks.append(shadow)
    example = meta.get("example")
    if not isinstance(example, dict) or not example:
        checks.append(Check("/metadata carries an example record", False, f"example = {example!r}"))
        return checks
    status, body = http("POST", f"{url}/predict", example)
    preds = body.get("predictions") if isinstance(body, dict) else None
    pred = preds[0] if isinstance(preds, list) and preds and isinstance(preds[0], dict) else {}
    probability = pred.get("probability")
    ok = (
        status == 200
        and isinstance(probability, int | float)
        and 0.0 <= probability <= 1.0
        and pred.get("model_version") == version
        and bool(pred.get("prediction_id"))
    )
    checks.append(
        Check("POST /predict with the example record predicts", ok, f"status {status}, {pred or body!r}")
    )
    status, body = http("POST", f"{url}/predict", invalid_record(example))
    checks.append(
        Check(
            "POST /predict with an invalid record is a 4xx JSON error",
            400 <= status < 500 and isinstance(body, dict),
            f"status {status}, {body!r}",
        )
    )
    return checks


@cli_entrypoint
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.deliver.smoke", description=__doc__.splitlines()[0])
    parser.add_argument("url", help="base URL of the service, e.g. https://api.staging.example.com")
    parser.add_argument("--model-version", default="", help="fail unless the service serves this version")
    parser.add_argument("--wait", type=float, default=60, help="seconds to wait for /ready first")
    args = parser.parse_args(argv)
    url = args.url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise PipelineError(f"URL {args.url!r}: must start with http:// or https://")
    wait_until_ready(url, args.wait)
    try:
        checks = check_service(url, args.model_version or None)
    except OSError as exc:
        raise PipelineError(f"{url}: connection failed during the smoke test ({exc})") from exc
    for check in checks:
        print(check.line())
    failed = [c.name for c in checks if not c.passed]
    if failed:
        print(f"smoke test FAILED against {url}: {'; '.join(failed)}", file=sys.stderr)
        return 1
    print(f"smoke test passed against {url}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

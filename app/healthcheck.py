"""The image's HEALTHCHECK: exit 0 when GET /health answers 200 on the port app/gunicorn.conf.py listens on (BIND,
else AIP_HTTP_PORT, else PORT), or on 8080 (SageMaker's `serve`, which app/entrypoint.sh sets in its own process
only). Standard library only: no curl in slim images."""

from __future__ import annotations

import os
import sys
import urllib.request

SAGEMAKER_PORT = "8080"


def ports() -> list[str]:
    bind = os.environ.get("BIND", "")
    port = (
        bind.rsplit(":", 1)[1] if bind else os.environ.get("AIP_HTTP_PORT") or os.environ.get("PORT", "8000")
    )
    return list(dict.fromkeys((port, SAGEMAKER_PORT)))


def healthy(port: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def main() -> int:
    return 0 if any(healthy(port) for port in ports()) else 1


if __name__ == "__main__":
    sys.exit(main())

"""A real image registry for tests: Debian's docker-registry (the CNCF distribution server) on a loopback port.

`image_registry(workdir)` starts it with filesystem storage and yields its address (`127.0.0.1:<port>`);
`push_image(address, repository)` uploads a minimal OCI image (a config blob and a manifest with no layers) over
the registry's own HTTP API and returns the manifest digest the registry computed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.gunicorn_server import free_port


@contextmanager
def image_registry(workdir: Path) -> Iterator[str]:
    binary = shutil.which("docker-registry")
    if binary is None:
        raise RuntimeError("docker-registry not found: `make test` installs it (tools/system-tools.txt)")
    port = free_port()
    config = workdir / "registry.yml"
    config.write_text(
        json.dumps(  # YAML is a superset of JSON
            {
                "version": 0.1,
                "log": {"level": "error"},
                "storage": {"filesystem": {"rootdirectory": str(workdir / "storage")}},
                "http": {"addr": f"127.0.0.1:{port}"},
            }
        ),
        encoding="utf-8",
    )
    log = (workdir / "registry.log").open("w")
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://{address}/v2/", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"docker-registry did not start: {(workdir / 'registry.log').read_text()[-500:]}"
                    ) from None
                time.sleep(0.1)
        yield address
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def _upload_blob(address: str, repository: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    start = urllib.request.Request(f"http://{address}/v2/{repository}/blobs/uploads/", method="POST")
    with urllib.request.urlopen(start, timeout=10) as response:
        location = response.headers["Location"]
    if location.startswith("/"):
        location = f"http://{address}{location}"
    sep = "&" if "?" in location else "?"
    put = urllib.request.Request(
        f"{location}{sep}digest={digest}",
        data=data,
        method="PUT",
        headers={"Content-Type": "application/octet-stream"},
    )
    with urllib.request.urlopen(put, timeout=10):
        pass
    return digest


def push_image(address: str, repository: str, tag: str = "latest", label: str = "") -> str:
    """Upload a minimal image to `address`/`repository`:`tag`; returns its manifest digest (sha256:...)."""
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"test": label or tag}},
            "rootfs": {"type": "layers", "diff_ids": []},
        }
    ).encode()
    config_digest = _upload_blob(address, repository, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [],
        }
    ).encode()
    put = urllib.request.Request(
        f"http://{address}/v2/{repository}/manifests/{tag}",
        data=manifest,
        method="PUT",
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
    )
    with urllib.request.urlopen(put, timeout=10) as response:
        digest = response.headers["Docker-Content-Digest"]
    assert digest == "sha256:" + hashlib.sha256(manifest).hexdigest()
    return digest

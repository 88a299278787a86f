"""Does the registry hold this image digest? One HEAD request of the OCI distribution API, before git declares it.

`require_manifest("ghcr.io/owner/repo@sha256:...")` asks `HEAD /v2/<repository>/manifests/<digest>` and raises a
one-line PipelineError unless the registry answers 200. A 401 with a `Bearer` challenge (GitHub's, Docker Hub's,
Artifact Registry's) is answered the standard way: a token from the challenge's realm for `repository:<name>:pull`,
with REGISTRY_USERNAME / REGISTRY_PASSWORD as basic credentials when set (in the deploy workflow: the actor and
GITHUB_TOKEN); a `Basic` challenge gets those credentials directly. Loopback registries (127.0.0.1, localhost:
tests, a local mirror) are spoken to over plain HTTP, every other one over HTTPS. Standard library only.
"""

from __future__ import annotations

import base64
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request

from mlcore.errors import PipelineError
from ops.deliver.pins import split_reference

MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
LOOPBACK = re.compile(r"^(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?$")


def split_repository(name: str) -> tuple[str, str]:
    """(registry host, repository path) as docker resolves them: no host part means Docker Hub."""
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return "registry-1.docker.io", name if "/" in name else f"library/{name}"


def _credentials() -> str | None:
    user, password = os.environ.get("REGISTRY_USERNAME", ""), os.environ.get("REGISTRY_PASSWORD", "")
    if not password:
        return None
    return base64.b64encode(f"{user or 'token'}:{password}".encode()).decode()


def _challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, params = header.partition(" ")
    return scheme.lower(), dict(re.findall(r'(\w+)="([^"]*)"', params))


def _head(url: str, authorization: str | None, timeout: float) -> tuple[int, str]:
    headers = {"Accept": MANIFEST_TYPES}
    if authorization:
        headers["Authorization"] = authorization
    request = urllib.request.Request(url, method="HEAD", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, ""
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("WWW-Authenticate", "")


def _token(params: dict[str, str], repository: str, basic: str | None, timeout: float) -> str:
    realm = params.get("realm", "")
    if not realm.startswith(("https://", "http://")):
        raise PipelineError(f"registry: bearer challenge without a usable realm ({realm!r})")
    query = {"scope": params.get("scope") or f"repository:{repository}:pull"}
    if params.get("service"):
        query["service"] = params["service"]
    request = urllib.request.Request(f"{realm}?{urllib.parse.urlencode(query)}")
    if basic:
        request.add_header("Authorization", f"Basic {basic}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = json.loads(response.read() or b"{}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise PipelineError(f"registry: no token from {realm}: {exc}") from exc
    token = body.get("token") or body.get("access_token")
    if not token:
        raise PipelineError(f"registry: {realm} answered without a token")
    return str(token)


def require_manifest(reference: str, timeout: float = 15) -> None:
    """Raise unless the registry holds `reference` (name@sha256:...)."""
    name, digest = split_reference(reference)
    host, repository = split_repository(name)
    scheme = "http" if LOOPBACK.match(host) else "https"
    url = f"{scheme}://{host}/v2/{repository}/manifests/{digest}"
    basic = _credentials()
    try:
        status, challenge = _head(url, None, timeout)
        if status == 401 and challenge:
            kind, params = _challenge(challenge)
            if kind == "bearer":
                status, _ = _head(url, f"Bearer {_token(params, repository, basic, timeout)}", timeout)
            elif kind == "basic" and basic:
                status, _ = _head(url, f"Basic {basic}", timeout)
    except (urllib.error.URLError, OSError) as exc:
        raise PipelineError(
            f"image {reference}: registry {host} unreachable ({exc}); nothing was changed"
        ) from exc
    if status == 200:
        return
    if status == 404:
        raise PipelineError(
            f"image {reference}: the registry has no such manifest (HEAD {url}: 404); push the image first "
            "(the deploy workflow's image job) or correct the digest"
        )
    if status in (401, 403):
        raise PipelineError(
            f"image {reference}: the registry refused to say whether the digest exists (HEAD {url}: {status}); "
            "set REGISTRY_USERNAME and REGISTRY_PASSWORD to a credential that may pull it"
        )
    raise PipelineError(f"image {reference}: unexpected answer from the registry (HEAD {url}: {status})")

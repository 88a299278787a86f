"""The image an overlay declares: the `images:` entry of deploy/k8s/overlays/<env>/kustomization.yaml.

In pull mode (params.yaml `delivery.mode`, ops.deliver.gitops) git is the record of what runs: the deploy workflow
writes the pushed image's digest into the overlay and Argo CD or Flux applies it. An entry reads

    images:
      - name: api                            # the base Deployment's placeholder image
        newName: ghcr.io/<owner>/<repo>      # the repository the digest lives in
        digest: sha256:<64 hex>              # what runs; never a tag, which can move under you

Pure functions over the file's text: `read_pin` parses it, `pin_text` returns it with a new name and digest and
its comments kept, `refusal` says why a pin cannot be deployed in pull mode (a tag, a digest of the wrong form).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

from ruamel.yaml import YAML, YAMLError

from mlcore.errors import PipelineError

IMAGE_NAME = "api"  # deploy/k8s/base/deployment.yaml: the container's placeholder image, replaced per overlay
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
REFERENCE = re.compile(r"^(?P<name>[a-z0-9][a-z0-9._/:-]*)@(?P<digest>sha256:[0-9a-f]{64})$")


@dataclass(frozen=True)
class Pin:
    """What an overlay declares for the api image: `digest` set and `tag` empty is deployable in pull mode."""

    name: str
    digest: str = ""
    tag: str = ""

    @property
    def reference(self) -> str:
        """`name@digest`, `name:tag`, or the bare name (the registry's `latest`) when neither is set."""
        if self.digest:
            return f"{self.name}@{self.digest}"
        return f"{self.name}:{self.tag}" if self.tag else self.name


def split_reference(reference: str) -> tuple[str, str]:
    """(repository, digest) of `registry/name@sha256:<64 hex>`; anything else is refused with the form wanted."""
    match = REFERENCE.match(reference.strip())
    if not match:
        raise PipelineError(
            f"image {reference!r}: not a digest reference; give registry/name@sha256:<64 hex> "
            "(the digest the image job pushed), never a tag"
        )
    return match["name"], match["digest"]


def _yaml() -> YAML:
    yaml = YAML()  # round trip: comments and key order survive an edit
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def _load(text: str, where: str):
    try:
        doc = _yaml().load(text)
    except YAMLError as exc:
        raise PipelineError(f"{where}: not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(doc, dict):
        raise PipelineError(f"{where}: expected a kustomization (a mapping)")
    return doc


def _entry(doc, where: str):
    entries = [e for e in doc.get("images") or [] if isinstance(e, dict) and e.get("name") == IMAGE_NAME]
    if len(entries) != 1:
        raise PipelineError(
            f"{where}: {len(entries)} `images:` entries named {IMAGE_NAME!r}; the overlay must hold exactly one "
            f"(name: {IMAGE_NAME}, newName: <registry>/<repository>, digest: sha256:...)"
        )
    return entries[0]


def read_pin(text: str, where: str) -> Pin:
    entry = _entry(_load(text, where), where)
    name = str(entry.get("newName") or IMAGE_NAME)
    return Pin(name=name, digest=str(entry.get("digest") or ""), tag=str(entry.get("newTag") or ""))


def pin_text(text: str, where: str, name: str, digest: str) -> str:
    """The kustomization `text` with the api image pinned to `name@digest` (any tag removed), comments kept."""
    if not DIGEST.match(digest):
        raise PipelineError(f"{where}: digest {digest!r} is not sha256:<64 hex>")
    doc = _load(text, where)
    entry = _entry(doc, where)
    entry["newName"] = name
    if "newTag" in entry:
        del entry["newTag"]
    entry["digest"] = digest
    out = io.StringIO()
    _yaml().dump(doc, out)
    return out.getvalue()


def refusal(pin: Pin, where: str) -> str:
    """Why `pin` cannot be synced in pull mode ("" when it can). No pin yet (neither tag nor digest) is allowed:
    an environment the workflow has not bumped yet."""
    if pin.tag:
        return (
            f"{where}: image {IMAGE_NAME} is pinned by tag {pin.tag!r}, not a digest; pull mode deploys digests "
            f"only: remove `newTag` and let the deploy workflow bump it "
            f"(or `make gitops-bump ENV=<env> IMAGE=<name>@sha256:...`)"
        )
    if pin.digest and not DIGEST.match(pin.digest):
        return f"{where}: image {IMAGE_NAME} digest {pin.digest!r} is not sha256:<64 hex>"
    return ""

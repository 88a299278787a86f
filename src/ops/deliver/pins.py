"""The image an overlay declares: the `images:` entry of deploy/k8s/overlays/<env>/kustomization.yaml.

In pull mode (params.yaml `delivery.mode`, ops.deliver.gitops) git is the record of what runs: the deploy workflow
writes the pushed image's digest into the overlay and Argo CD or Flux applies it. An entry reads

    images:
      - name: api                            # the base Deployment's placeholder image
        newName: ghcr.io/<owner>/<repo>      # the repository the digest lives in
        digest: sha256:<64 hex>              # what runs; never a tag, which can move under you

A challenger in the shadow (deploy/k8s/shadow, docs/deployment.md "Shadow first") is a second entry, `name:
challenger`, pinned the same way, and the component listed under `components:`; the two go together: pinning the
challenger lists the component, `unshadow_text` removes both, `shadow_refusal` names an overlay with one only.

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
CHALLENGER = "challenger"  # deploy/k8s/shadow/deployment-patch.yaml: the shadow model's initContainer image
SHADOW_COMPONENT = "../../shadow"  # how an overlay lists the shadow component
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


def _entries(doc, image: str) -> list:
    return [e for e in doc.get("images") or [] if isinstance(e, dict) and e.get("name") == image]


def _entry(doc, where: str, image: str = IMAGE_NAME):
    entries = _entries(doc, image)
    if len(entries) == 0 and image == CHALLENGER:
        doc.setdefault("images", []).append({"name": CHALLENGER})
        entries = _entries(doc, image)
    if len(entries) != 1:
        raise PipelineError(
            f"{where}: {len(entries)} `images:` entries named {image!r}; the overlay must hold exactly one "
            f"(name: {image}, newName: <registry>/<repository>, digest: sha256:...)"
        )
    return entries[0]


def _pin_of(entry, image: str) -> Pin:
    name = str(entry.get("newName") or image)
    return Pin(name=name, digest=str(entry.get("digest") or ""), tag=str(entry.get("newTag") or ""))


def _dump(doc) -> str:
    out = io.StringIO()
    _yaml().dump(doc, out)
    return out.getvalue()


def read_pin(text: str, where: str) -> Pin:
    return _pin_of(_entry(_load(text, where), where), IMAGE_NAME)


def read_challenger(text: str, where: str) -> Pin | None:
    """The challenger's pin, or None when the overlay runs no shadow (no `challenger` entry)."""
    entries = _entries(_load(text, where), CHALLENGER)
    return _pin_of(entries[0], CHALLENGER) if len(entries) == 1 else None


def shadow_listed(doc) -> bool:
    return SHADOW_COMPONENT in (doc.get("components") or [])


def pin_text(text: str, where: str, name: str, digest: str, image: str = IMAGE_NAME) -> str:
    """The kustomization `text` with `image` (the api, or the challenger: then the shadow component is listed
    too) pinned to `name@digest` (any tag removed), comments kept."""
    if not DIGEST.match(digest):
        raise PipelineError(f"{where}: digest {digest!r} is not sha256:<64 hex>")
    doc = _load(text, where)
    entry = _entry(doc, where, image)
    entry["newName"] = name
    if "newTag" in entry:
        del entry["newTag"]
    entry["digest"] = digest
    if image == CHALLENGER and not shadow_listed(doc):
        doc.setdefault("components", []).insert(0, SHADOW_COMPONENT)
    return _dump(doc)


def unshadow_text(text: str, where: str) -> str:
    """The kustomization `text` without a shadow: the challenger's entry and the component removed."""
    doc = _load(text, where)
    if shadow_listed(doc):
        doc["components"].remove(SHADOW_COMPONENT)
    for entry in _entries(doc, CHALLENGER):
        doc["images"].remove(entry)
    return _dump(doc)


def refusal(pin: Pin, where: str, image: str = IMAGE_NAME) -> str:
    """Why `pin` cannot be synced in pull mode ("" when it can). No pin yet (neither tag nor digest) is allowed:
    an environment the workflow has not bumped yet."""
    if pin.tag:
        return (
            f"{where}: image {image} is pinned by tag {pin.tag!r}, not a digest; pull mode deploys digests "
            f"only: remove `newTag` and let the deploy workflow bump it "
            f"(or `make gitops-bump ENV=<env> IMAGE=<name>@sha256:...`)"
        )
    if pin.digest and not DIGEST.match(pin.digest):
        return f"{where}: image {image} digest {pin.digest!r} is not sha256:<64 hex>"
    return ""


def shadow_refusal(text: str, where: str) -> str:
    """Why the overlay's shadow cannot run ("" when it can, or when there is none): the component without a
    challenger pinned by digest, or a challenger entry without the component (in push and pull mode alike)."""
    doc = _load(text, where)
    challenger = _entries(doc, CHALLENGER)
    how = "`make shadow ENV=<env> IMAGE=<name>@sha256:...` pins both; `OFF=1` removes both"
    if shadow_listed(doc) and (len(challenger) != 1 or not _pin_of(challenger[0], CHALLENGER).digest):
        return f"{where}: lists {SHADOW_COMPONENT} but pins no {CHALLENGER} image by digest; {how}"
    if challenger and not shadow_listed(doc):
        return f"{where}: pins a {CHALLENGER} image but does not list {SHADOW_COMPONENT}; {how}"
    if challenger:
        return refusal(_pin_of(challenger[0], CHALLENGER), where, CHALLENGER)
    return ""

"""Deploy the inference service to a Kubernetes environment, by image digest, with an automatic way back.

    python -m ops.deliver.deploy render  staging --image ghcr.io/o/r@sha256:...  # print the manifests
    python -m ops.deliver.deploy apply   staging --image ghcr.io/o/r@sha256:...  # apply, wait, undo on failure
    python -m ops.deliver.deploy smoke   staging [--url URL] [--model-version V] # no URL: port-forward
    python -m ops.deliver.deploy rollback staging                                # kubectl rollout undo
    python -m ops.deliver.deploy preflight staging --kubeconfig-out PATH         # CI: is there a cluster?

With the canary component (deploy/k8s/canary) the overlay renders an Argo Rollouts Rollout: `apply` then waits
for the Rollout to promote the new revision or abort it (ops.deliver.rollout), and undoes the Deployment
template on an abort.

The overlay in deploy/k8s/overlays/<env> is rendered with `kubectl kustomize`; the names of its Deployment,
Service and namespace are read from that rendering (they follow params.yaml `project.name`: `make project`), so
nothing here is named twice. The `api` container of the Deployment gets the image digest (no sed, no edited files); the result goes to `kubectl apply`. A rollout that
does not become ready within the timeout is undone (`kubectl rollout undo`) and the command fails.
`KUBECTL` names the kubectl binary (tests point it at a fake). `preflight` needs only the standard library, so
the deploy workflow can decide to skip (no cluster credential: a fork or a new repository) before any set-up.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlcore.errors import PipelineError, cli_entrypoint
from ops.deliver import rollout
from ops.deliver.smoke import check_service, free_port, wait_until_ready
from ops.github import set_outputs

OVERLAYS = Path("deploy/k8s/overlays")
CONTAINER = "api"
SERVICE_PORT = 80
DIGEST_REF = re.compile(r"^[a-z0-9][a-z0-9._/:-]*@sha256:[0-9a-f]{64}$")


def kubectl(*args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = [os.environ.get("KUBECTL", "kubectl"), *args]
    try:
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise PipelineError(f"{cmd[0]}: not found (install kubectl)") from exc
    if check and proc.returncode != 0:
        raise PipelineError(f"`kubectl {' '.join(args[:4])}` failed: {(proc.stderr or proc.stdout).strip()}")
    return proc


def overlay_dir(env: str, root: Path = OVERLAYS) -> Path:
    path = root / env
    if not (path / "kustomization.yaml").is_file():
        known = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        raise PipelineError(f"{path}/kustomization.yaml: no such overlay (environments: {', '.join(known)})")
    return path


def render(env: str, root: Path = OVERLAYS) -> list[dict[str, Any]]:
    """The overlay's manifests as rendered by `kubectl kustomize`."""
    import yaml

    out = kubectl("kustomize", str(overlay_dir(env, root))).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The rendered object of `kind` named `name`; without a name, the only one of that kind."""
    found = [
        doc for doc in docs if doc.get("kind") == kind and name in (None, doc.get("metadata", {}).get("name"))
    ]
    if name is None and len(found) > 1:
        names = ", ".join(str(d["metadata"].get("name")) for d in found)
        raise PipelineError(
            f"rendered manifests: {len(found)} {kind}s ({names}); the overlay must render one"
        )
    if not found:
        raise PipelineError(f"rendered manifests: no {kind}" + (f" named {name!r}" if name else ""))
    return found[0]


def deployment_name(docs: list[dict[str, Any]]) -> str:
    return str(find(docs, "Deployment")["metadata"]["name"])


def service_name(docs: list[dict[str, Any]]) -> str:
    return str(find(docs, "Service")["metadata"]["name"])


def api_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = find(docs, "Deployment")
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        if container["name"] == CONTAINER:
            return container
    raise PipelineError(f"Deployment {deployment['metadata']['name']}: no container named {CONTAINER!r}")


def set_image(docs: list[dict[str, Any]], image: str) -> list[dict[str, Any]]:
    """Pin the api container to `image`, which must be a digest reference (what was tested is what runs)."""
    if not DIGEST_REF.match(image):
        raise PipelineError(f"--image {image!r}: must be a digest reference (registry/name@sha256:<64 hex>)")
    api_container(docs)["image"] = image
    return docs


def namespace(docs: list[dict[str, Any]]) -> str:
    return find(docs, "Deployment")["metadata"].get("namespace", "default")


def to_yaml(docs: list[dict[str, Any]]) -> str:
    import yaml

    return yaml.safe_dump_all(docs, sort_keys=False)


def rollback(ns: str, deployment: str, timeout_s: int) -> str:
    """Undo the last rollout and wait for the previous revision to be ready again."""
    undo = kubectl("rollout", "undo", f"deployment/{deployment}", "-n", ns, check=False)
    if undo.returncode != 0:
        return f"rollback impossible: {(undo.stderr or undo.stdout).strip()}"
    kubectl("rollout", "status", f"deployment/{deployment}", "-n", ns, f"--timeout={timeout_s}s", check=False)
    return "rolled back to the previous revision"


def rollout_name(docs: list[dict[str, Any]]) -> str:
    """The Argo Rollouts Rollout the overlay renders (the deploy/k8s/canary component), or ""."""
    found = [d for d in docs if d.get("kind") == "Rollout"]
    return str(found[0]["metadata"]["name"]) if found else ""


def require_rollouts_api() -> None:
    listed = kubectl("api-resources", "--api-group", "argoproj.io", "-o", "name", check=False)
    if listed.returncode != 0 or "rollouts.argoproj.io" not in listed.stdout.split():
        raise PipelineError(
            "the overlay renders an Argo Rollouts Rollout (deploy/k8s/canary) but the cluster serves no "
            "rollouts.argoproj.io API: install Argo Rollouts (docs/deployment.md, 'Canary analysis') or remove "
            "../../canary from the overlay's components"
        )


def get_json(*args: str) -> dict[str, Any]:
    got = kubectl("get", *args, "-o", "json", check=False)
    return rollout.parse(got.stdout, args[0]) if got.returncode == 0 else {}


def apply(
    env: str, image: str, timeout_s: int = 300, root: Path = OVERLAYS, canary_timeout_s: int = 2400
) -> str:
    """Apply the overlay with `image`; wait for the rollout (or, with the canary component, for the Rollout to
    promote it); on failure undo it and raise."""
    docs = set_image(render(env, root), image)
    ns, deployment = namespace(docs), deployment_name(docs)
    canary = rollout_name(docs)
    if canary:
        require_rollouts_api()
        before = rollout.Status.of(get_json(f"rollout/{canary}", "-n", ns)).stable
        generation = get_json(f"deployment/{deployment}", "-n", ns).get("metadata", {}).get("generation")
    kubectl("apply", "-f", "-", input=to_yaml(docs))
    if canary:
        applied = get_json(f"deployment/{deployment}", "-n", ns).get("metadata", {}).get("generation")

        def get_rollout() -> dict[str, Any]:
            found = get_json(f"rollout/{canary}", "-n", ns)
            if not found:
                raise PipelineError(
                    f"rollout/{canary} in {ns}: not found after the apply (is Argo Rollouts running?)"
                )
            return found

        try:
            outcome = rollout.wait(
                get_rollout,
                before,
                canary_timeout_s,
                same_template=generation is not None and generation == applied,
            )
        except PipelineError as exc:
            undone = rollback(ns, deployment, timeout_s)
            raise PipelineError(f"rollout of {image} to {ns}: {exc}; {undone}") from exc
        print(f"rollout/{canary}: {outcome}")
        return ns
    status = kubectl(
        "rollout", "status", f"deployment/{deployment}", "-n", ns, f"--timeout={timeout_s}s", check=False
    )
    if status.returncode != 0:
        outcome = rollback(ns, deployment, timeout_s)
        raise PipelineError(
            f"rollout of {image} to {ns} did not become ready in {timeout_s}s "
            f"({(status.stderr or status.stdout).strip()}); {outcome}"
        )
    return ns


def preflight(kubeconfig: str, dest: Path, env: str) -> bool:
    """Write the cluster credential to `dest` (0600); without one, explain the skip and return False.

    The secret may hold the kubeconfig as YAML or base64-encoded YAML.
    """
    text = kubeconfig.strip()
    if not text:
        print(
            f"::notice title=Deploy to {env} skipped::no KUBECONFIG secret for the {env} environment "
            "(a fork or a repository without a cluster): the image was not deployed. "
            "README, section Deployment, shows how to add one."
        )
        return False
    if "apiVersion" not in text:
        try:
            text = base64.b64decode(text, validate=True).decode("utf-8").strip()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise PipelineError("KUBECONFIG secret: neither a kubeconfig YAML nor base64 of one") from exc
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text + "\n")
    return True


@contextmanager
def port_forward(ns: str, service: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`kubectl port-forward` the Service to a loopback port; yields its base URL and the process."""
    port = free_port()
    cmd = [
        os.environ.get("KUBECTL", "kubectl"),
        "port-forward",
        "--address",
        "127.0.0.1",
        "-n",
        ns,
        f"service/{service}",
        f"{port}:{SERVICE_PORT}",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        yield f"http://127.0.0.1:{port}", proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def smoke(
    env: str, url: str | None, model_version: str | None, wait_s: float = 60, root: Path = OVERLAYS
) -> bool:
    """ops.deliver.smoke's checks against `url`, or through a port-forward to the environment's Service."""

    def run(base: str, alive: Any = None) -> bool:
        wait_until_ready(base, wait_s, alive=alive)
        checks = check_service(base, model_version)
        for check in checks:
            print(check.line())
        return all(c.passed for c in checks)

    if url:
        return run(url.rstrip("/"))
    docs = render(env, root)
    with port_forward(namespace(docs), service_name(docs)) as (base, proc):
        try:
            return run(base, alive=lambda: proc.poll() is None)
        except PipelineError as exc:
            stderr = proc.stderr.read() if proc.poll() is not None and proc.stderr else ""
            raise PipelineError(f"{exc} (kubectl port-forward: {stderr.strip() or 'running'})") from exc


@cli_entrypoint
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.deliver.deploy", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    commands = {name: sub.add_parser(name) for name in ("render", "apply", "smoke", "rollback", "preflight")}
    for p in commands.values():
        p.add_argument("env", help="overlay name under deploy/k8s/overlays (staging, production)")
        p.add_argument("--overlays", type=Path, default=OVERLAYS)
        p.add_argument("--timeout", type=int, default=300, help="seconds to wait for a rollout")
        p.add_argument("--canary-timeout", type=int, default=2400, help="seconds a canary may take (Rollout)")
    for name in ("render", "apply"):
        commands[name].add_argument("--image", required=True, help="image digest reference to deploy")
    commands["smoke"].add_argument("--url", default="", help="service URL; default: kubectl port-forward")
    commands["smoke"].add_argument("--model-version", default="")
    commands["preflight"].add_argument(
        "--kubeconfig-out",
        type=Path,
        required=True,
        help="where to write the KUBECONFIG_CONTENT environment variable",
    )
    args = parser.parse_args(argv)
    if args.command == "preflight":
        enabled = preflight(os.environ.get("KUBECONFIG_CONTENT", ""), args.kubeconfig_out, args.env)
        set_outputs({"enabled": enabled})
        return 0
    if args.command == "render":
        sys.stdout.write(to_yaml(set_image(render(args.env, args.overlays), args.image)))
    elif args.command == "apply":
        ns = apply(args.env, args.image, args.timeout, args.overlays, args.canary_timeout)
        print(f"deployed {args.image} to namespace {ns}")
    elif args.command == "smoke":
        if not smoke(args.env, args.url or None, args.model_version or None, root=args.overlays):
            print(f"smoke test FAILED in {args.env}", file=sys.stderr)
            return 1
        print(f"smoke test passed in {args.env}")
    else:
        docs = render(args.env, args.overlays)
        ns = namespace(docs)
        outcome = rollback(ns, deployment_name(docs), args.timeout)
        print(f"{ns}: {outcome}")
        if not outcome.startswith("rolled back"):
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Test the serving image for real: build it with podman, run it on a loopback port, probe it, stop it.

`make image-test` (python tools/image_test.py) checks what Kubernetes and the deploy workflow rely on: /health,
/ready, a valid and an invalid /predict, a non-root process, a healthy HEALTHCHECK and a clean exit on SIGTERM;
then each platform's contract (src/ops/deliver/platform_checks.py): KServe V1/V2 on the same container, and the image run
again with Vertex AI's environment (AIP_HTTP_PORT, AIP_*_ROUTE, AIP_STORAGE_URI) and as SageMaker runs it
(`serve`, port 8080), each with readiness, valid, invalid and batch requests and a SIGTERM drain.

Developer tooling, not product code: machines without a reachable registry (like the ones this template is
tested on) get a local stand-in for the base image: Debian's python3 built with mmdebstrap and imported under the
official name, with the host's CA certificates added so `pip install` inside the build reaches the package
index; podman gets a containers.conf of its own (runc, the host's ulimits). The Dockerfile stays clean.
Needs podman, runc and mmdebstrap (tools/system-tools.txt; `make image-test` and `make test` check them).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlcore.errors import PipelineError, cli_entrypoint
from ops.deliver.image import (
    CONTAINER_PORT,
    Engine,
    build_image,
    default_tag,
    git_revision,
    image_labels,
    image_size,
    model_version,
    project_of,
    stage_context,
)
from ops.deliver.platform_checks import (
    DRAIN_REQUESTS,
    VERTEX_ROUTES,
    InFlight,
    kserve_checks,
    sagemaker_checks,
    vertex_checks,
)
from ops.deliver.smoke import Check, check_service, free_port, http, wait_until_ready

BASE_IMAGE = "docker.io/library/python:3.11-slim"
HOST_CA_DIR = Path("/usr/local/share/ca-certificates")


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "gitops-mlops" / "image-test"


def containers_conf_text(nofile: int, nproc: int) -> str:
    """podman engine settings: runc (crun fails on some cgroup layouts) and ulimits the host can grant."""
    return (
        "# Written by `make image-test` (tools/image_test.py); podman reads it through CONTAINERS_CONF.\n"
        "[containers]\n"
        f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
        "\n[engine]\n"
        'runtime = "runc"\n'
    )


def host_ulimits() -> tuple[int, int]:

    def hard(limit: int, cap: int) -> int:
        value = resource.getrlimit(limit)[1]
        return cap if value == resource.RLIM_INFINITY else min(value, cap)

    return hard(resource.RLIMIT_NOFILE, 1 << 20), hard(resource.RLIMIT_NPROC, 32768)


def write_containers_conf(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(containers_conf_text(*host_ulimits()), encoding="utf-8")
    return path


def podman_engine(conf_dir: Path) -> Engine:
    """podman configured for this host (runc, ulimits) through a containers.conf of our own."""
    conf = write_containers_conf(conf_dir / "containers.conf")
    return Engine("podman", {**os.environ, "CONTAINERS_CONF": str(conf)})


def ensure_base_image(engine: Engine, workdir: Path, ref: str = BASE_IMAGE) -> bool:
    """Pull `ref` when the engine lacks it; when no registry answers, build a stand-in with mmdebstrap.

    Returns True when a stand-in was made.
    """
    if engine.image_exists(ref):
        return False
    try:
        if engine.run("pull", "--quiet", ref, check=False, timeout=300).returncode == 0:
            return False
    except subprocess.TimeoutExpired:
        pass
    workdir.mkdir(parents=True, exist_ok=True)
    tarball = workdir / "base.tar"
    # Debian's python3 in /usr/bin plus the host's extra CA certificates so HTTPS from a build works here.
    hooks = []
    certs = sorted(HOST_CA_DIR.glob("*.crt")) if HOST_CA_DIR.is_dir() else []
    if certs:
        hooks = [
            f'--customize-hook=mkdir -p "$1{HOST_CA_DIR}"',
            *(f'--customize-hook=cp {c} "$1{HOST_CA_DIR}/"' for c in certs),
            '--customize-hook=chroot "$1" update-ca-certificates',
        ]
    cmd = [
        "mmdebstrap",
        "--variant=apt",
        "--include=python3,python3-pip,python3-venv,ca-certificates",
        *hooks,
        "bookworm",
        str(tarball),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise PipelineError("mmdebstrap failed:\n" + "\n".join(proc.stderr.strip().splitlines()[-15:]))
    engine.run("import", "--change", "CMD=/bin/bash", str(tarball), ref)
    tarball.unlink()
    return True


@contextmanager
def running_container(
    engine: Engine,
    tag: str,
    port: int,
    env: dict[str, str] | None = None,
    container_port: int = CONTAINER_PORT,
    args: tuple[str, ...] = (),
) -> Iterator[str]:
    """Run `tag` as Kubernetes does (read-only root, tmpfs /tmp, no capabilities); yields the container id."""
    env_args = [arg for key, value in (env or {}).items() for arg in ("--env", f"{key}={value}")]
    cid = engine.run(
        "run",
        "--detach",
        "--read-only",
        "--tmpfs",
        "/tmp:rw,size=64m",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--publish",
        f"127.0.0.1:{port}:{container_port}",
        *env_args,
        tag,
        *args,
    ).stdout.strip()
    try:
        yield cid
    finally:
        engine.run("rm", "--force", "--time", "0", cid, check=False)


def container_running(engine: Engine, cid: str) -> bool:
    proc = engine.run("inspect", "--format", "{{.State.Running}}", cid, check=False)
    return proc.stdout.strip() == "true"


def container_logs(engine: Engine, cid: str, lines: int = 30) -> str:
    proc = engine.run("logs", "--tail", str(lines), cid, check=False)
    return (proc.stdout + proc.stderr).strip()


def process_uids(engine: Engine, cid: str) -> list[int]:
    """The real uid of every process in the container."""
    out = engine.run("top", cid, "huser").stdout.split()
    # `podman top` prints a header line (HUSER) then one user per process, as a name or number on the host
    names = out[1:]
    uids = []
    for name in names:
        uids.append(int(name) if name.isdigit() else _uid_of(name))
    return uids


def _uid_of(name: str) -> int:
    import pwd

    return pwd.getpwnam(name).pw_uid


def container_checks(engine: Engine, cid: str, grace: float) -> list[Check]:
    checks = []
    uids = process_uids(engine, cid)
    checks.append(Check("no process runs as root", bool(uids) and 0 not in uids, f"uids {sorted(set(uids))}"))
    # what deploy/gitops/argocd/smoke-test/job.yaml runs, from inside the image, as its non-root user
    smoke = engine.run(
        "exec",
        cid,
        "/opt/venv/bin/python",
        "-m",
        "ops.deliver.smoke",
        f"http://127.0.0.1:{CONTAINER_PORT}",
        check=False,
    )
    said = (smoke.stdout + smoke.stderr).strip().splitlines()
    checks.append(
        Check(
            "the image's own smoke test passes (the Argo CD PostSync hook's command)",
            smoke.returncode == 0,
            said[-1] if said else f"exit {smoke.returncode}",
        )
    )
    health = engine.run("healthcheck", "run", cid, check=False)
    checks.append(
        Check(
            "HEALTHCHECK reports healthy",
            health.returncode == 0,
            (health.stdout + health.stderr).strip() or "healthy",
        )
    )
    checks.append(stop_check(engine, cid, grace))
    return checks


def stop_check(engine: Engine, cid: str, grace: float, name: str = "", signal_sent: bool = False) -> Check:
    started = time.monotonic()
    if not signal_sent:
        engine.run("kill", "--signal", "TERM", cid)
    exit_code = engine.run("wait", cid, timeout=grace + 10).stdout.strip()
    took = time.monotonic() - started
    return Check(
        f"{name}SIGTERM stops it cleanly (exit 0, within the graceful timeout)",
        exit_code == "0" and took <= grace,
        f"exit {exit_code} after {took:.1f}s",
    )


def wait_for(url: str, timeout: float, alive: Any) -> None:
    """Poll GET `url` until 200 (a platform's readiness route)."""
    deadline = time.monotonic() + timeout
    while True:
        if not alive():
            raise PipelineError(f"the server exited before {url} answered")
        try:
            if http("GET", url, timeout=2)[0] == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise PipelineError(f"{url} did not answer 200 within {timeout:g}s")
        time.sleep(0.5)


# platform -> (container port, environment, arguments, readiness route, its checks); ports as the platform sets them
PLATFORM_RUNS: dict[str, tuple[int, dict[str, str], tuple[str, ...], str, Any]] = {
    "Vertex AI": (
        8080,
        {"AIP_HTTP_PORT": "8080", "AIP_STORAGE_URI": "file:///srv/model", **VERTEX_ROUTES},
        (),
        VERTEX_ROUTES["AIP_HEALTH_ROUTE"],
        vertex_checks,
    ),
    "SageMaker": (8080, {}, ("serve",), "/ping", sagemaker_checks),
}


def platform_checks(
    engine: Engine, tag: str, example: dict[str, Any], grace: float, ready_timeout: float
) -> list[Check]:
    """The image run as each platform runs it: readiness, requests, HEALTHCHECK, SIGTERM drain."""
    checks = []
    for platform, (container_port, env, args, ready_route, probes) in PLATFORM_RUNS.items():
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {"GRACEFUL_TIMEOUT": str(int(grace)), **env}
        with running_container(engine, tag, port, env, container_port, args) as cid:
            try:
                wait_for(url + ready_route, ready_timeout, alive=lambda: container_running(engine, cid))
            except PipelineError as exc:
                checks.append(Check(f"{platform}: ready", False, f"{exc}; {container_logs(engine, cid)}"))
                continue
            checks += probes(url, example)
            health = engine.run("healthcheck", "run", cid, check=False)
            checks.append(Check(f"{platform}: HEALTHCHECK reports healthy", health.returncode == 0, "exit 0"))
            path, body = DRAIN_REQUESTS[platform]
            in_flight = InFlight(port, path, body(example))
            time.sleep(1)  # the server has the request (headers, half the body) when SIGTERM arrives
            engine.run("kill", "--signal", "TERM", cid)
            time.sleep(1)
            status = in_flight.finish()
            checks.append(
                Check(f"{platform}: a request in flight at SIGTERM is answered", status == 200, f"{status}")
            )
            checks.append(stop_check(engine, cid, grace, f"{platform}: ", signal_sent=True))
    return checks


@dataclass
class ImageTestResult:
    tag: str
    size_bytes: int
    build_seconds: float
    base_seconds: float
    ready_seconds: float
    labels: dict[str, str]
    checks: list[Check]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def report(self) -> str:
        lines = [c.line() for c in self.checks]
        lines.append(
            f"image {self.tag}: {self.size_bytes / 1e6:.0f} MB; build {self.build_seconds:.0f}s"
            f" (base image {self.base_seconds:.0f}s); ready after {self.ready_seconds:.1f}s"
        )
        return "\n".join(lines)


def run_image_test(
    repo: Path, model_dir: Path, tag: str = "", grace: float = 30, ready_timeout: float = 90
) -> ImageTestResult:
    """Build the image with `model_dir` inside and run every check; the container is always removed.
    Needs podman, runc and mmdebstrap: `make image-test` and `make test` check them (tools/system-tools)."""
    work = cache_dir()
    engine = podman_engine(work)
    started = time.monotonic()
    ensure_base_image(engine, work)
    base_seconds = time.monotonic() - started
    version = model_version(model_dir)
    project = project_of(repo)
    tag = tag or default_tag(project)
    with tempfile.TemporaryDirectory(prefix="image-context-") as tmp:
        context = stage_context(repo, model_dir, Path(tmp))
        build_seconds = build_image(
            engine, context, tag, git_revision(repo), version, project, extra=("--pull=never",)
        )
    labels = image_labels(engine, tag)
    checks = [
        Check(
            "image labels record the project, revision and model version",
            labels.get("org.opencontainers.image.revision") == git_revision(repo)
            and labels.get("io.github.gitops-mlops.model-version") == version
            and labels.get("org.opencontainers.image.title") == f"{project.name}-api",
            f"{labels}",
        )
    ]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running_container(engine, tag, port, {"GRACEFUL_TIMEOUT": str(int(grace))}) as cid:
        try:
            ready = wait_until_ready(url, ready_timeout, alive=lambda: container_running(engine, cid))
        except PipelineError as exc:
            raise PipelineError(f"{exc}; container log:\n{container_logs(engine, cid)}") from exc
        checks += check_service(url, version)
        example = http("GET", f"{url}/metadata")[1]["example"]
        name = http("GET", f"{url}/v2")[1]["name"]  # V2's server metadata names the one model it serves
        checks += kserve_checks(url, example, name)
        checks += container_checks(engine, cid, grace)
        if not all(c.passed for c in checks):
            checks.append(Check("container log", False, container_logs(engine, cid)))
    checks += platform_checks(engine, tag, example, grace, ready_timeout)
    return ImageTestResult(tag, image_size(engine, tag), build_seconds, base_seconds, ready, labels, checks)


@cli_entrypoint
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/image_test.py", description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=Path("."))
    parser.add_argument("--model", type=Path, default=Path("model"), help="model directory for the image")
    parser.add_argument("--tag", default="", help="default: localhost/<project.name>-api:dev")
    parser.add_argument("--grace", type=float, default=30, help="GRACEFUL_TIMEOUT given to gunicorn, seconds")
    args = parser.parse_args(argv)
    if not (args.model / "metadata.json").is_file():
        raise PipelineError(f"{args.model}/metadata.json: no model (run `make run`, or pass --model DIR)")
    result = run_image_test(args.repo, args.model, args.tag, args.grace)
    print(result.report())
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())

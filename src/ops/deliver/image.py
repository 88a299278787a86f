"""Build the serving container image: `python -m ops.deliver.image build` (`make image`).

The Dockerfile is built with podman (or docker; CONTAINER_ENGINE chooses) from a context that holds only what
it copies (`CONTEXT_PATHS`: the app, the shared core src/mlcore, the serving requirements, the model, the smoke test), and the
image is labelled with the git revision, the model version and the project (params.yaml `project`: the default
tag is `localhost/<name>-api:dev`). `model-version` prints the version for the
deploy workflow. The end-to-end test of the image (`make image-test`) is developer tooling: tools/image_test.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from mlcore.artifact import load_metadata
from mlcore.errors import PipelineError, cli_entrypoint
from ops.project import service_name
from pipeline.config import ProjectParams, load_params

CONTAINER_PORT = 8000
# What the runtime image needs from the repository (the Dockerfile copies exactly these).
# the smoke test's three files: the Argo CD PostSync hook runs it in this image (deploy/gitops/argocd/smoke-test)
SMOKE_PATHS = ("src/ops/__init__.py", "src/ops/deliver/__init__.py", "src/ops/deliver/smoke.py")
CONTEXT_PATHS = ("Dockerfile", ".dockerignore", "requirements/serve.txt", "app", "src/mlcore", *SMOKE_PATHS)


@dataclass
class Engine:
    """A container engine CLI (podman or docker) with the environment it runs in."""

    cli: str = "podman"
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    def run(
        self, *args: str, check: bool = True, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [self.cli, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
            raise PipelineError(
                f"`{self.cli} {' '.join(args[:3])} ...` failed ({proc.returncode}):\n" + "\n".join(detail)
            )
        return proc

    def image_exists(self, ref: str) -> bool:
        return self.run("image", "inspect", ref, check=False).returncode == 0


def default_engine_cli() -> str:
    """CONTAINER_ENGINE if set, else podman when installed, else docker."""
    chosen = os.environ.get("CONTAINER_ENGINE") or ("podman" if shutil.which("podman") else "docker")
    if shutil.which(chosen) is None:
        raise PipelineError(f"container engine `{chosen}` not found: install podman (or docker)")
    return chosen


# --- build ----------------------------------------------------------------------------------------


def git_revision(repo: Path) -> str:
    proc = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else "unknown"


def model_version(model_dir: Path) -> str:
    return str(load_metadata(model_dir)["model_version"])


def stage_context(repo: Path, model_dir: Path, dest: Path) -> Path:
    """A build context holding only what the Dockerfile copies, with `model_dir` as model/."""
    for rel in CONTEXT_PATHS:
        src = repo / rel
        if not src.exists():
            raise PipelineError(f"{src}: missing (the Dockerfile needs it)")
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, target)
    shutil.copytree(model_dir, dest / "model")
    return dest


def project_of(repo: Path) -> ProjectParams:
    return load_params(repo / "params.yaml").project


def default_tag(project: ProjectParams) -> str:
    return f"localhost/{service_name(project)}:dev"


def build_args(revision: str, version: str, project: ProjectParams) -> list[str]:
    values = {
        "GIT_REVISION": revision,
        "MODEL_VERSION": version,
        "IMAGE_TITLE": service_name(project),
        "IMAGE_DESCRIPTION": project.description,
    }
    return [arg for key, value in values.items() for arg in ("--build-arg", f"{key}={value}")]


def build_image(
    engine: Engine,
    context: Path,
    tag: str,
    revision: str,
    version: str,
    project: ProjectParams,
    extra: tuple[str, ...] = (),
) -> float:
    """Build `context`/Dockerfile as `tag`; returns the seconds taken. `--format docker` keeps HEALTHCHECK."""
    args = ["build", "--tag", tag, *build_args(revision, version, project), *extra]
    if engine.cli == "podman":
        args += ["--format", "docker"]
    started = time.monotonic()
    proc = subprocess.run(
        [engine.cli, *args, str(context)],
        env=engine.env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.strip().splitlines()[-25:])
        raise PipelineError(f"image build failed ({proc.returncode}):\n{tail}")
    return time.monotonic() - started


def image_size(engine: Engine, tag: str) -> int:
    return int(engine.run("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip())


def image_labels(engine: Engine, tag: str) -> dict[str, str]:
    out = engine.run("image", "inspect", "--format", "{{json .Config.Labels}}", tag).stdout
    return json.loads(out) or {}


# --- CLI ------------------------------------------------------------------------------------------


@cli_entrypoint
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.deliver.image", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build the image from the repository root (with its model/)")
    v = sub.add_parser("model-version", help="print `model_version=<v>` of --model (for $GITHUB_OUTPUT)")
    for p in (b, v):
        p.add_argument("--repo", type=Path, default=Path("."))
        p.add_argument("--model", type=Path, default=Path("model"), help="model directory for the image")
        p.add_argument("--tag", default="", help="default: localhost/<project.name>-api:dev")
    args = parser.parse_args(argv)
    if not (args.model / "metadata.json").is_file():
        raise PipelineError(f"{args.model}/metadata.json: no model (run `make run`, or pass --model DIR)")
    if args.command == "model-version":
        print(f"model_version={model_version(args.model)}")
        return 0
    if args.command == "build":
        if args.model.resolve() != (args.repo / "model").resolve():
            raise PipelineError(
                "--model: `build` uses the repository's model/ (the build context); "
                "`make image-test` (tools/image_test.py) can take another directory"
            )
        project = project_of(args.repo)
        tag = args.tag or default_tag(project)
        engine = Engine(default_engine_cli())
        seconds = build_image(
            engine, args.repo, tag, git_revision(args.repo), model_version(args.model), project
        )
        print(f"built {tag} in {seconds:.0f}s ({image_size(engine, tag) / 1e6:.0f} MB)")
        return 0
    raise AssertionError(args.command)  # argparse allows only the choices above


if __name__ == "__main__":
    raise SystemExit(main())

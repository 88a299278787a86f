"""deploy/terraform/gcp, checked offline: every file parses (python-hcl2), and the policy a scanner would enforce
is asserted here. `terraform init`/`validate` need the google provider from its registry, which cannot be
reached here; no terraform or OpenTofu installs from Debian or PyPI (so no `terraform fmt -check` in CI), and
checkov's pins conflict with the dev tools' (packaging<24 against pytest's >=24): docs/deployment.md says so."""

from __future__ import annotations

from typing import Any

import hcl2
import pytest
import yaml

from tests.support.paths import REPO_ROOT

TERRAFORM = REPO_ROOT / "deploy" / "terraform" / "gcp"
META = {"__is_block__", "__comments__", "__inline_comments__"}


def unquote(value: Any) -> Any:
    """python-hcl2 keeps string literals' quotes and block markers: plain values, for assertions."""
    if isinstance(value, dict):
        return {unquote(k): unquote(v) for k, v in value.items() if k not in META}
    if isinstance(value, list):
        return [unquote(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


@pytest.fixture(scope="module")
def config() -> dict[str, list[Any]]:
    merged: dict[str, list[Any]] = {}
    for path in sorted(TERRAFORM.glob("*.tf")):
        with path.open(encoding="utf-8") as fh:
            for kind, blocks in unquote(hcl2.load(fh)).items():
                merged.setdefault(kind, []).extend(blocks)
    return merged


def resources(config: dict[str, list[Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {name: body for block in config["resource"] if kind in block for name, body in block[kind].items()}


def test_the_gcp_terraform_parses_offline_init_and_validate_need_the_unreachable_provider_registry(
    config: dict[str, list[Any]],
) -> None:
    kinds = {kind for block in config["resource"] for kind in block}
    assert {
        "google_storage_bucket",
        "google_artifact_registry_repository",
        "google_iam_workload_identity_pool",
        "google_iam_workload_identity_pool_provider",
        "google_service_account",
        "google_vertex_ai_endpoint",
    } <= kinds
    variables = {name for block in config["variable"] for name in block}
    assert {"project_id", "region"} <= variables


def test_only_this_repositorys_oidc_tokens_are_admitted(config: dict[str, list[Any]]) -> None:
    provider = resources(config, "google_iam_workload_identity_pool_provider")["github"]
    assert provider["attribute_condition"] == "assertion.repository == '${var.github_repository}'"
    assert provider["oidc"][0]["issuer_uri"] == "https://token.actions.githubusercontent.com"


def test_each_environment_deploys_with_its_own_account_and_no_key_or_broad_role(
    config: dict[str, list[Any]],
) -> None:
    text = "\n".join(path.read_text(encoding="utf-8") for path in TERRAFORM.glob("*.tf"))
    for broad in (
        "roles/owner",
        "roles/editor",
        "roles/viewer",
        "roles/aiplatform.admin",
        "roles/aiplatform.user",
    ):
        assert f'"{broad}"' not in text, f"a broad role: {broad}"
    assert "google_service_account_key" not in text, "a stored key: impersonate through OIDC instead"
    impersonation = resources(config, "google_service_account_iam_member")["deploy_from_github"]
    assert impersonation["for_each"] == "${var.environments}"
    assert impersonation["member"] == "${local.environment_members[each.key]}"
    [members] = [block["environment_members"] for block in config["locals"]]
    assert members.endswith('/attribute.environment/${env}"}}')  # a principal set per GitHub Environment


def test_the_dvc_bucket_is_private_uniform_and_versioned(config: dict[str, list[Any]]) -> None:
    bucket = resources(config, "google_storage_bucket")["dvc"]
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    assert bucket["versioning"][0]["enabled"] is True
    for binding in resources(config, "google_storage_bucket_iam_member").values():
        assert binding["member"] not in ("allUsers", "allAuthenticatedUsers")


def test_every_variable_the_vertex_job_reads_is_a_documented_terraform_output(
    config: dict[str, list[Any]],
) -> None:
    workflow = yaml.safe_load(
        (REPO_ROOT / ".github" / "workflows" / "deploy.yaml").read_text(encoding="utf-8")
    )
    job_env = workflow["jobs"]["vertex"]["env"]
    read = {name for name, value in job_env.items() if str(value).startswith("${{ vars.")}
    described = " ".join(body["description"] for block in config["output"] for body in block.values())
    assert read and all(f"variable {name}" in described for name in read), (read, described)

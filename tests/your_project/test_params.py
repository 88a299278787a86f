"""The repository's params.yaml loads through the one parser and its contract is self-consistent."""

from __future__ import annotations

import subprocess

import yaml

from ops.report import gate
from pipeline.config import load_params
from pipeline.data import dir_md5, regenerate_command
from tests.support.paths import REPO_ROOT

PARAMS = REPO_ROOT / "params.yaml"


def test_the_project_params_load_with_typed_sections():
    params = load_params(PARAMS)
    schema = params.schema
    features = set(schema.categorical_features) | set(schema.numeric_features)
    assert features, "params.yaml schema: no features"
    assert not features & {schema.label, schema.id_column, schema.time_column}


def test_the_project_params_carry_valid_report_tolerances() -> None:
    # Any metrics the project chooses, but each a known metric with a non-negative tolerance (a negative one
    # would fail every pull request).
    params = yaml.safe_load(PARAMS.read_text())
    policy = gate.ReportParams.model_validate(params.get("report") or {})
    assert all(tolerance >= 0 for tolerance in policy.max_regression.values()), policy.max_regression


def test_data_dvc_is_what_params_yaml_data_regenerate_rebuilds(tmp_path):
    # The promise every fork relies on: with no remote, data.regenerate recreates exactly the tracked data.
    recorded = yaml.safe_load((REPO_ROOT / "data.dvc").read_text())["outs"][0]["md5"]
    if load_params(PARAMS).data is None:  # no generator: data comes only from the DVC cache or remote
        assert recorded.endswith(".dir")
        return
    subprocess.run(regenerate_command(PARAMS, tmp_path), cwd=REPO_ROOT, check=True, capture_output=True)
    assert dir_md5(tmp_path) == recorded

"""`make data-or-skip` (ci.yaml's pipeline job): data that nothing here can provide skips the pipeline with a
reason; every other data problem still fails the job."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlcore.errors import PipelineError
from ops import repo
from pipeline.data import DataUnavailable


@pytest.fixture()
def github(monkeypatch, tmp_path) -> dict[str, Path]:
    files = {"output": tmp_path / "output", "summary": tmp_path / "summary"}
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_OUTPUT", str(files["output"]))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(files["summary"]))
    return files


def _ensure_data_that(monkeypatch, outcome) -> None:
    def fake(*args, **kwargs):
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr(repo, "ensure_data", fake)


def test_unavailable_data_is_a_warning_a_summary_and_available_false(monkeypatch, github, capsys, tmp_path):
    _ensure_data_that(
        monkeypatch, DataUnavailable("data/: not in the DVC cache and no DVC remote provided it")
    )
    assert repo.main(["data", "--root", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert "::warning title=data unavailable::The pipeline did not run" in out
    assert "no DVC remote provided it" in err  # the cause, as make data would say it
    assert github["output"].read_text() == "available=false\n"
    assert "Pipeline not run" in github["summary"].read_text()
    assert "make run && make report BASE=origin/main" in github["summary"].read_text()


def test_data_that_arrives_sets_available_true(monkeypatch, github, tmp_path):
    _ensure_data_that(monkeypatch, "regenerate")
    assert repo.main(["data", "--root", str(tmp_path)]) == 0
    assert github["output"].read_text() == "available=true\n"
    assert not github["summary"].exists()


def test_any_other_data_problem_still_fails_the_job(monkeypatch, github, capsys, tmp_path):
    _ensure_data_that(monkeypatch, PipelineError("data/: differs from data.dvc and the change is not saved"))
    assert repo.main(["data", "--root", str(tmp_path)]) == 2
    assert "error: data/: differs from data.dvc" in capsys.readouterr().err
    assert not github["output"].exists()

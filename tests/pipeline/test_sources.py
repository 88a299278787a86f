"""dvc.yaml's stage deps are exactly the code each stage runs (pipeline.sources)."""

from __future__ import annotations

import copy
import subprocess
import sys

import yaml

from pipeline.sources import code_sha256, dependency_problems, stage_files
from tests.support.paths import REPO_ROOT

SPEC = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text(encoding="utf-8"))


def test_every_stage_lists_exactly_the_code_it_imports():
    assert dependency_problems(SPEC, REPO_ROOT) == []


def test_a_missing_and_a_stray_dependency_are_named_with_the_fix():
    spec = copy.deepcopy(SPEC)
    deps = spec["stages"]["train"]["deps"]
    deps.remove("src/pipeline/config.py")
    deps.append("src/ops/monitor/run.py")
    assert dependency_problems(spec, REPO_ROOT) == [
        "dvc.yaml: stage 'train' runs pipeline.train, so its deps must list its code: "
        "add src/pipeline/config.py; remove src/ops/monitor/run.py"
    ]


def test_function_level_imports_count_and_ops_code_stays_out_of_training():
    names = {p.name for p in stage_files("pipeline.train")}
    assert {"train.py", "modeling.py", "artifact.py", "config.py", "io.py", "errors.py"} <= names
    assert not names & {"lineage.py", "retrain.py", "report.py", "monitor.py"}
    # tune.py imports sqlalchemy's errors inside a function; project modules imported that way count too
    assert "modeling.py" in {p.name for p in stage_files("pipeline.tune")}


def test_the_code_hash_changes_with_any_file_the_stage_runs(tmp_path, monkeypatch):
    import pipeline.sources as sources

    src = tmp_path / "src"
    (src / "pipeline").mkdir(parents=True)
    (src / "pipeline/__init__.py").write_text('"""pkg"""\n')
    (src / "pipeline/stage.py").write_text("from pipeline.helper import x\n")
    (src / "pipeline/helper.py").write_text("x = 1\n")
    (src / "pipeline/other.py").write_text("y = 1\n")
    monkeypatch.setattr(sources, "SRC", src)
    before = code_sha256("pipeline.stage")
    (src / "pipeline/other.py").write_text("y = 2\n")
    assert code_sha256("pipeline.stage") == before
    (src / "pipeline/helper.py").write_text("x = 2\n")
    assert code_sha256("pipeline.stage") != before


def test_the_cli_passes_on_the_repository_and_names_an_unreadable_file(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "pipeline.sources", "check", str(REPO_ROOT / "dvc.yaml")])
    assert ok.returncode == 0
    bad = tmp_path / "dvc.yaml"
    bad.write_text("stages: [unclosed\n", encoding="utf-8")
    run = subprocess.run(
        [sys.executable, "-m", "pipeline.sources", "check", str(bad)], capture_output=True, text=True
    )
    assert run.returncode != 0
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and run.stderr.startswith(f"error: {bad}: cannot read it (")

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from demo.generate import demo_params, generate_dataset
from mlcore.errors import PipelineError
from pipeline.data import DataUnavailable, dir_md5, ensure_data, main
from tests.support.paths import TEST_PARAMS


def _recorded_md5(dvc_file: Path) -> str:
    return yaml.safe_load(dvc_file.read_text())["outs"][0]["md5"]


def _dvc(root: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, check=True, capture_output=True)


@pytest.fixture(scope="module")
def template_repo(tmp_path_factory):
    """A tiny DVC project (no git needed) whose data.dvc records two generated months of 60 rows."""
    root = tmp_path_factory.mktemp("template")
    raw = yaml.safe_load(TEST_PARAMS.read_text())
    raw["data"].update(months=2, rows_per_month=60)
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    _dvc(root, "init", "--no-scm", "-q")
    generate_dataset(demo_params(root / "params.yaml"), root / "data")
    _dvc(root, "add", "-q", "data")
    shutil.rmtree(root / ".dvc" / "cache")  # as on a fresh clone: only data.dvc
    shutil.rmtree(root / "data")
    return root


@pytest.fixture()
def repo(template_repo, tmp_path):
    root = tmp_path / "repo"
    shutil.copytree(template_repo, root)
    return root


def _file_bytes(directory: Path) -> dict[str, bytes]:
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    return {str(p.relative_to(directory)): p.read_bytes() for p in files}


@pytest.mark.slow
def test_fresh_clone_regenerates_verifies_and_caches_then_is_a_no_op(repo):
    recorded = (repo / "data.dvc").read_bytes()
    messages = []
    assert ensure_data(repo, progress=messages.append) == "regenerate"
    assert "no DVC remote configured" in messages[0]
    assert dir_md5(repo / "data") == _recorded_md5(repo / "data.dvc")
    assert (repo / "data.dvc").read_bytes() == recorded  # DVC's record is untouched
    assert not [p for p in repo.iterdir() if p.name.startswith(".data-regenerate-")]

    assert ensure_data(repo, progress=messages.append) == "up-to-date"
    shutil.rmtree(repo / "data")
    assert ensure_data(repo, progress=messages.append) == "checkout"  # regeneration cached it
    assert dir_md5(repo / "data") == _recorded_md5(repo / "data.dvc")


@pytest.mark.slow
def test_regeneration_that_does_not_match_data_dvc_is_an_error_naming_both_hashes(repo):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"]["seed"] += 1  # the generator now makes different data than was recorded
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    expected = _recorded_md5(repo / "data.dvc")
    with pytest.raises(PipelineError, match=f"expected md5 {expected}, got [0-9a-f]{{32}}.dir"):
        ensure_data(repo, progress=lambda _: None)
    assert not (repo / "data").exists()
    assert not [p for p in repo.iterdir() if p.name.startswith(".data-regenerate-")]


@pytest.mark.slow
def test_tampered_unsaved_data_is_detected_and_never_overwritten(repo, capsys):
    ensure_data(repo, progress=lambda _: None)
    tampered = repo / "data" / "events" / "2024-01.parquet"
    tampered.write_bytes(tampered.read_bytes() + b"x")
    before = _file_bytes(repo / "data")
    assert main(["--root", str(repo)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: data/: differs from data.dvc (recorded ")
    assert "`dvc add data`" in err[-1]
    assert _file_bytes(repo / "data") == before


@pytest.mark.slow
def test_pulls_from_a_reachable_remote_and_falls_back_when_it_is_not(repo, tmp_path):
    remote = tmp_path / "remote"
    ensure_data(repo, progress=lambda _: None)
    _dvc(repo, "remote", "add", "-d", "store", str(remote))
    _dvc(repo, "push", "-q", "data.dvc")
    shutil.rmtree(repo / "data")
    shutil.rmtree(repo / ".dvc" / "cache")
    assert ensure_data(repo, progress=lambda _: None) == "pull"
    assert dir_md5(repo / "data") == _recorded_md5(repo / "data.dvc")

    shutil.rmtree(repo / "data")
    shutil.rmtree(repo / ".dvc" / "cache")
    shutil.rmtree(remote)  # the remote no longer has the data
    messages = []
    assert ensure_data(repo, progress=messages.append) == "regenerate"
    assert any("remote 'store'" in m and "regenerating instead" in m for m in messages)


def _set_data_section(root: Path, section: dict | None) -> None:
    raw = yaml.safe_load((root / "params.yaml").read_text())
    if section is None:
        raw.pop("data")
    else:
        raw["data"].update(section)
    (root / "params.yaml").write_text(yaml.safe_dump(raw))


def test_without_the_demo_section_and_no_remote_data_is_an_error_naming_the_ways_to_get_it(repo):
    _set_data_section(repo, None)  # a fork that deleted src/demo and params.yaml `data`
    with pytest.raises(DataUnavailable, match=r"no DVC remote provided it.*`dvc remote add -d") as err:
        ensure_data(repo, progress=lambda _: None)
    assert "data.regenerate" in str(err.value)
    assert not (repo / "data").exists() and not list(repo.glob(".data-regenerate-*"))


def test_a_failing_regenerate_command_is_one_error_with_its_last_line(repo):
    _set_data_section(repo, {"regenerate": "python -c 'import sys; sys.exit(\"no warehouse export today\")'"})
    with pytest.raises(
        PipelineError, match=r"data.regenerate failed with exit status 1: no warehouse export"
    ):
        ensure_data(repo, progress=lambda _: None)
    assert not (repo / "data").exists() and not list(repo.glob(".data-regenerate-*"))


def test_missing_data_dvc_is_a_clear_error(tmp_path):
    with pytest.raises(PipelineError, match=r"data\.dvc: not found"):
        ensure_data(tmp_path, progress=lambda _: None)


@pytest.mark.parametrize(
    ("done", "github_actions", "notice"),
    [("regenerate", "true", True), ("regenerate", None, False), ("pull", "true", False)],
)
def test_a_regeneration_on_github_actions_leaves_a_notice(monkeypatch, capsys, done, github_actions, notice):
    import pipeline.data

    monkeypatch.setattr(pipeline.data, "ensure_data", lambda *args, **kwargs: done)
    if github_actions is None:
        monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    else:
        monkeypatch.setenv("GITHUB_ACTIONS", github_actions)
    assert main([]) == 0
    assert ("::notice title=data::" in capsys.readouterr().out) is notice

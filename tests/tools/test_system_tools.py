"""tools/system-tools: `make test` checks the one list of system tools and names what is missing."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.paths import REPO_ROOT

SCRIPT = REPO_ROOT / "tools" / "system-tools"
LIST = REPO_ROOT / "tools" / "system-tools.txt"


def listed() -> list[tuple[str, str]]:
    rows = [line.split(None, 2) for line in LIST.read_text(encoding="utf-8").splitlines()]
    return [(row[0], row[1]) for row in rows if row and not row[0].startswith("#")]


def run_with_only(tmp_path: Path, commands: set[str]) -> subprocess.CompletedProcess:
    """Run the check with a PATH holding stand-ins for exactly `commands` (and no apt-get, no sudo)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in commands:
        (bin_dir / name).symlink_to("/bin/true")
    return subprocess.run(
        ["/bin/bash", str(SCRIPT)], env={"PATH": str(bin_dir)}, capture_output=True, text=True, cwd=tmp_path
    )


def test_the_suites_tools_are_all_present_here():
    """`make test` has just run this check; on CI it installed whatever the machine lacked."""
    assert (
        subprocess.run([str(SCRIPT)], env={"SYSTEM_TOOLS_INSTALL": "0", "PATH": "/usr/bin:/bin"}).returncode
        == 0
    )


def test_a_missing_tool_is_named_with_the_command_that_installs_it(tmp_path):
    commands = {cmd for cmd, _ in listed()} - {"wrk"}
    result = run_with_only(tmp_path, commands)
    assert result.returncode == 1
    assert result.stderr == (
        "error: missing system tools: wrk (HTTP load against the served model). "
        "Install them with: sudo apt-get install -y wrk\n"
    )


def test_several_missing_tools_are_named_once_with_one_install_line(tmp_path):
    commands = {cmd for cmd, _ in listed()} - {"chromium", "chromedriver", "podman"}
    result = run_with_only(tmp_path, commands)
    assert result.returncode == 1
    line = result.stderr.strip()
    assert line.count("\n") == 0
    assert "chromium (" in line and "chromedriver (" in line and "podman (" in line
    assert line.endswith("Install them with: sudo apt-get install -y podman chromium chromium-driver")


def test_every_tool_the_tests_call_is_on_the_list():
    names = {cmd for cmd, _ in listed()}
    assert {"initdb", "podman", "runc", "mmdebstrap", "wrk", "chromium", "kubectl"} <= names
    assert "promtool" in names  # the alert rules' checks and unit tests (tests/ops/test_monitoring_assets.py)

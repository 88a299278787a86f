"""Where the repository is, for tests and harnesses (a plain module: conftest is pytest's, not an import)."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# The test project's params (a complete copy of the demo contract): every test except tests/your_project reads
# this, never REPO_ROOT / "params.yaml", so a fork's own contract and data leave the rest of the suite green.
TEST_PARAMS = Path(__file__).resolve().parent / "params.yaml"

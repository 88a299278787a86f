"""Where the repository is, for tests and harnesses (a plain module: conftest is pytest's, not an import)."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

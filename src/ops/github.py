"""What a job tells GitHub Actions: step outputs ($GITHUB_OUTPUT) and the job summary ($GITHUB_STEP_SUMMARY).

Outside a workflow run (the variables unset) both are no-ops, so the jobs behave the same locally.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping


def set_outputs(values: Mapping[str, object]) -> None:
    """Append `name=value` lines to $GITHUB_OUTPUT; a multi-line value is written with a random delimiter."""
    path = os.environ.get("GITHUB_OUTPUT")
    if not path:
        return
    lines = []
    for name, value in values.items():
        text = "true" if value is True else "false" if value is False else str(value)
        if "\n" in text:
            delimiter = f"EOF_{secrets.token_hex(8)}"
            lines.append(f"{name}<<{delimiter}\n{text}\n{delimiter}\n")
        else:
            lines.append(f"{name}={text}\n")
    with open(path, "a", encoding="utf-8") as fh:
        fh.writelines(lines)


def add_summary(markdown: str) -> None:
    """Append markdown to the job summary ($GITHUB_STEP_SUMMARY)."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(markdown.rstrip("\n") + "\n")

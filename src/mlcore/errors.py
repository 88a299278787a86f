"""Errors a stage reports to its user, and the CLI edge that turns them into one line and an exit status."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable


class PipelineError(Exception):
    """Bad input or configuration: the message names the file, column or key and the rule broken."""


EXIT_BAD_INPUT = 2


def cli_entrypoint(func: Callable[..., int | None]) -> Callable[..., int]:
    """Run a stage's main(): a PipelineError becomes `error: <message>` on stderr and exit status 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs) -> int:
        try:
            return func(*args, **kwargs) or 0
        except PipelineError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT

    return wrapper

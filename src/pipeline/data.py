"""`make data`: put exactly the data recorded in data.dvc into data/, from the best source available.

1. data/ already matches data.dvc: nothing to do (its files are saved to the DVC cache if they are not yet).
2. The recorded version is in the local DVC cache: `dvc checkout`.
3. A default DVC remote is configured: `dvc pull`; if it cannot be reached (or lacks the data), go on.
4. Regenerate: run params.yaml `data.regenerate` (the demo's is `python -m demo.generate`), verify that what it
   wrote hashes to the md5 in data.dvc, then move it into place and save it to the cache (data.dvc stays
   byte-identical). Without that command (your own data) this step is an error saying where data can come from.

A data/ that differs from data.dvc and is not saved in the cache is never overwritten: that is someone's
unrecorded change, and the error says how to record (`dvc add data`) or discard (`dvc checkout --force`) it.
Regenerated data that does not match data.dvc is an error naming both hashes.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from mlcore.errors import PipelineError, cli_entrypoint
from pipeline.config import load_params

Progress = Callable[[str], None]


def dir_md5(path: str | Path) -> str:
    """The DVC 3 hash of a directory (`<md5>.dir`), computed by DVC's own library, as in data.dvc."""
    from dvc_data.hashfile.build import build
    from dvc_data.hashfile.db import HashFileDB
    from dvc_objects.fs.local import LocalFileSystem
    from dvc_objects.fs.memory import MemoryFileSystem

    scratch = HashFileDB(MemoryFileSystem(), "/scratch")
    _, _, obj = build(scratch, str(Path(path).resolve()), LocalFileSystem(), "md5", dry_run=True)
    return obj.hash_info.value


def _in_cache(repo, hash_info) -> bool:
    """Whether a directory version and every file in it are in the local DVC cache."""
    from dvc_data.hashfile import load

    odb = repo.cache.local
    if not hash_info or not odb.exists(hash_info.value):
        return False
    try:
        tree = load(odb, hash_info)
    except Exception:  # a corrupt .dir object in the cache simply does not count as cached
        return False
    return all(odb.exists(entry_hash.value) for _, _, entry_hash in tree)


def ensure_data(
    root: str | Path = ".", params_path: str | Path = "params.yaml", progress: Progress = print
) -> str:
    """Make data/ match data.dvc. Returns what was done: up-to-date, checkout, pull or regenerate."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    root = Path(root).resolve()
    dvc_file = root / "data.dvc"
    if not dvc_file.exists():
        raise PipelineError(f"{dvc_file}: not found; record your data with `dvc add data` first")

    with Repo(str(root)) as repo:
        out = repo.stage.load_one(str(dvc_file)).outs[0]
        expected = out.hash_info
        if not expected:
            raise PipelineError(f"{dvc_file}: no md5 recorded for '{out.def_path}': run `dvc add`")
        data_dir = Path(out.fs_path)
        rel = out.def_path

        if data_dir.exists():
            progress(f"data: hashing {rel}/ ...")
            current = out.get_hash()
            if current == expected:
                if not _in_cache(repo, expected):
                    repo.commit(str(dvc_file), force=True)
                progress(f"data: {rel}/ matches data.dvc ({expected.value})")
                return "up-to-date"
            if not _in_cache(repo, current):
                raise PipelineError(
                    f"{rel}/: differs from data.dvc (recorded {expected.value}, found {current.value}) and "
                    f"the change is not saved: record it with `dvc add {rel}` or discard it with "
                    f"`dvc checkout --force data.dvc`"
                )
            progress(f"data: {rel}/ holds another saved version ({current.value}); replacing it")

        if _in_cache(repo, expected):
            progress(f"data: restoring {expected.value} from the DVC cache")
            repo.checkout(targets=[str(dvc_file)], force=True)
            return "checkout"

        remote = repo.config["core"].get("remote")
        if remote:
            progress(f"data: pulling from DVC remote '{remote}' ...")
            try:
                repo.pull(targets=[str(dvc_file)], force=True)
                if out.get_hash() == expected:
                    progress(f"data: pulled {expected.value} from '{remote}'")
                    return "pull"
                progress(f"data: remote '{remote}' did not provide {expected.value}; regenerating instead")
            except DvcException as exc:
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                progress(f"data: remote '{remote}' not usable ({reason}); regenerating instead")
        else:
            progress("data: no DVC remote configured; regenerating with params.yaml data.regenerate")

        _regenerate(root / params_path, data_dir, expected.value, progress)
        repo.commit(str(dvc_file), force=True)
        progress(f"data: regenerated {rel}/ and verified it against data.dvc ({expected.value})")
        return "regenerate"


class DataUnavailable(PipelineError):
    """data.dvc's version is in no cache, no remote provided it and nothing can rebuild it."""


def regenerate_command(params_path: Path, out: Path) -> list[str]:
    """params.yaml `data.regenerate` as argv for `out`; an error naming the ways to get data when there is none."""
    section = load_params(params_path).data
    command = section.regenerate.strip() if section else ""
    if not command:
        raise DataUnavailable(
            "data/: not in the DVC cache and no DVC remote provided it, and params.yaml has no "
            "data.regenerate command: configure a remote (`dvc remote add -d <name> <url>`, see docs/data.md) "
            "and `dvc push` from a machine that has the data, or set data.regenerate to a command that "
            "rebuilds it"
        )
    try:
        argv = [part.replace("{out}", str(out)) for part in shlex.split(command)]
    except ValueError as exc:
        raise PipelineError(f"{params_path}: data.regenerate: cannot split '{command}' ({exc})") from exc
    return [sys.executable, *argv[1:]] if argv[0] in ("python", "python3") else argv


def _regenerate(params_path: Path, data_dir: Path, expected_md5: str, progress: Progress) -> None:
    """Run data.regenerate into a scratch directory beside data/, verify its hash, then swap it in."""
    scratch = Path(tempfile.mkdtemp(prefix=f".{data_dir.name}-regenerate-", dir=data_dir.parent))
    scratch.chmod(0o755)  # mkdtemp makes it owner-only; data/ should read like any checkout
    try:
        argv = regenerate_command(params_path, scratch)
        progress(f"data: {shlex.join(argv)}")
        try:
            done = subprocess.run(argv, cwd=params_path.parent, capture_output=True, text=True)
        except OSError as exc:
            raise PipelineError(
                f"{params_path}: data.regenerate: cannot run {argv[0]} ({exc.strerror})"
            ) from exc
        for line in (done.stderr + done.stdout).splitlines():
            progress(line)
        if done.returncode != 0:
            last = ((done.stderr or done.stdout).strip().splitlines() or ["no output"])[-1]
            raise PipelineError(f"data.regenerate failed with exit status {done.returncode}: {last}")
        got = dir_md5(scratch)
        if got != expected_md5:
            raise PipelineError(
                f"regenerated {data_dir.name}/ does not match data.dvc: expected md5 {expected_md5}, "
                f"got {got} (params.yaml `data` or the generator changed since data.dvc was recorded; "
                f"if intended, run the data.regenerate command with --out {data_dir.name} and "
                f"`dvc add {data_dir.name}`)"
            )
        if data_dir.exists():
            shutil.rmtree(data_dir)
        scratch.rename(data_dir)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@cli_entrypoint
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.data", description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=".", help="repository root holding data.dvc (default: .)")
    parser.add_argument("--params", default="params.yaml", help="relative to --root")
    args = parser.parse_args(argv)
    done = ensure_data(args.root, args.params, progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    if done == "regenerate" and os.environ.get("GITHUB_ACTIONS") == "true":
        # a job without the remote's credential (CI on any branch or pull request): say so in the run's summary
        print(
            "::notice title=data::no DVC remote answered (this job holds no credential for it): regenerated "
            "data/ with params.yaml data.regenerate and verified it against data.dvc",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

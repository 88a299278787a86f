"""`make run`'s closing summary: the data, the metrics, the gate verdict and where to look next."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def render_summary(root: Path) -> str:
    data = _load(root / "metrics/data.json")
    metrics = _load(root / "metrics/evaluate.json")
    gate = _load(root / "metrics/gate.json")
    tune = _load(root / "metrics/tune.json")
    meta = _load(root / "model/metadata.json")
    lines = ["", "== Pipeline summary =="]
    if data:
        lines.append(
            f"data      {data.get('rows')} rows, {data.get('window_start')} .. {data.get('window_end')}"
            f" (snapshot {str(data.get('snapshot_sha256', ''))[:12]})"
        )
    if tune:
        lines.append(
            f"tuning    {tune.get('n_trials_complete')} trials complete, {tune.get('n_trials_pruned')} "
            f"pruned; best validation {tune.get('metric')} {tune.get('best_value') or float('nan'):.4f}"
        )
    if meta:
        lines.append(f"model     {meta.get('model_version')} ({meta['params']['model_type']}) in model/")
    if metrics:
        shown = ("roc_auc", "pr_auc", "f1", "precision", "recall", "log_loss")
        lines.append("test      " + "  ".join(f"{k} {metrics[k]:.4f}" for k in shown if k in metrics))
    if gate:
        verdict = "PASSED" if gate["passed"] else "FAILED: " + ", ".join(gate["failed"])
        rules = ", ".join(c["rule"] for c in gate["checks"])
        lines.append(f"gate      {verdict} ({rules})")
    if not (metrics or gate):
        lines.append("no metrics yet: run `make run`")
    lines += [
        "plots     plots/evaluate/*.png, plots/tune/optimization_history.png",
        "next      `make serve` to serve the model, `dvc exp run -S tune.n_trials=30` to experiment",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=".", type=Path)
    args = parser.parse_args(argv)
    print(render_summary(args.root))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

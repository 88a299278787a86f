"""Continuous training: retrain on the latest data; the challenger replaces the champion only if it wins.

`python -m ops.retrain` (or `make retrain [CUTOFF=YYYY-MM-DD]`):
1. materialises the champion, the model the `promotion.champion_rev` branch (default `main`) tracks in its
   dvc.lock: the workspace model/ when it is that model, else `dvc get` from the DVC cache or remote, else
   (demo data, no remote) reproduced from that revision's pipeline;
2. records the newest data (`dvc add` when data/ changed), sets `extract.cutoff` when a cutoff is given, and
   re-runs `extract` (forced, so a changed warehouse is re-queried);
3. skips when the snapshot is the one the champion was trained on, or one a promoted challenger already
   proposed (its lineage record names the same data hash): no duplicate proposals, no retrain loops;
4. otherwise reproduces the pipeline (`dvc repro`) and scores champion and challenger on the same newest test
   window; `judge` applies the `promotion` rule of params.yaml;
5. writes the decision (`retrain/decision.json`, promote | reject | skip, with reasons), a report
   (`retrain/report.md`: the decision, then the PR report of ops.report against the champion's revision)
   and the challenger's lineage record (`lineage/<model_version>.json`). Every decision exits 0.

`python -m ops.retrain push` sends a promoted challenger's data and model to the default DVC remote.
`python -m ops.retrain propose` turns a "promote" into a pull request: a branch named from the data hash
(`retrain/<hash>`), a commit of data.dvc, dvc.lock, params.yaml, metrics, plots and the lineage record,
`git push`, and `gh pr create` to `promotion.base_branch`. An existing branch or pull request from that branch
means the data was already proposed: nothing is proposed twice.

Which file answers what:
- champion.py: which model is the champion, and is this data new (the duplicate check, recording data/)?
- rule.py: may the challenger replace the champion (the `promotion` rule of params.yaml)?
- run.py: the retrain run, step by step, and the command line;
- render.py: the decision as retrain/decision.json and retrain/report.md;
- propose.py: a promoted challenger as a branch, a `dvc push` and a pull request.
"""

"""Monitoring: is the served model still good? Reads the prediction log, judges it, and triggers retraining.

`make monitor` (`python -m ops.monitor`) reads predictions and feedback labels (`PREDICTION_LOG_URL`, any
SQLAlchemy URL; tables as docs/contracts.md) over a time window, for the model version in `model/`, and computes:
- traffic: predictions, rows it could not read, labelled share (label coverage) and label delay;
- live performance on the labelled predictions, with the same metrics as `evaluate` (mlcore.metrics);
- drift of every feature and of the predicted probability against the training reference in
  model/metadata.json (drift.py: PSI + KS / chi-square).

The verdict (monitoring/verdict.json, exit status):
- `healthy` (exit 0): enough data, nothing breached;
- `insufficient_data` (exit 0, not an alarm): too little traffic, or too few labels to judge performance;
- `breach` (exit 3): a performance floor, the share of drifted features, prediction drift or the rate of
  unreadable rows crossed its threshold (params.yaml `monitor`).
On a breach the trigger command (`monitor.trigger_command`, or MONITOR_TRIGGER_COMMAND) runs once per
breach that persisted: `monitor.trigger_persistence` asks for a breach in `breaches` of the last `of_last` judged
runs of the same model, the latest included (insufficient-data runs are no evidence either way; the state file
keeps the last 100 judged runs). The state file also remembers (model version, breach kinds) and the same breach
of the same model does not trigger again within `cooldown_hours` - it is already being retrained for. The command gets MONITOR_REASON and
MONITOR_VERDICT (the verdict file) in its environment.

Which file answers what:
- log.py: what was predicted and labelled in the window (the prediction log, read through mlcore.predlog_schema);
- drift.py: did a feature's or the prediction's distribution move (PSI, KS / chi-square);
- judge.py: the verdict for one window (params.yaml `monitor`, typed by MonitorParams; the performance floors);
- trigger.py: is this breach new, and running the retraining command;
- plots.py, render.py: the PNGs and report.md / verdict.json;
- run.py: the whole run and the CLI (`__main__.py`).
"""

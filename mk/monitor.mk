# Monitoring: judge the served model on the prediction log, and trigger retraining on a breach.
# Logic lives in src/ops/monitor/ (run, log, judge, drift, trigger, plots, render; tested by
# tests/ops/test_{monitor,drift}.py and tests/test_closed_loop.py); thresholds and the trigger command in params.yaml `monitor`. Workflow: .github/workflows/monitor.yaml.
.PHONY: monitor monitor-model

MONITOR_ARGS ?=

monitor: venv ## Judge the model in model/ on the prediction log (PREDICTION_LOG_URL): monitoring/report.md; exit 3 on a breach
	$(BIN)/python -m ops.monitor --params params.yaml $(MONITOR_ARGS)

monitor-model: model-from-lock ## Put the model dvc.lock records (what production serves) in model/, verified

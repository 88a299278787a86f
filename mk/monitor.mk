# Monitoring: judge the served model on the prediction log, and trigger retraining on a breach.
# Logic lives in src/ops/monitor/ (run, log, judge, drift, trigger, plots, render; tested by
# tests/ops/test_{monitor,drift}.py and tests/test_closed_loop.py); thresholds and the trigger command in params.yaml `monitor`. Workflow: .github/workflows/monitor.yaml.
.PHONY: monitor monitor-model alerts-test bench-monitor

MONITOR_ARGS ?=

monitor: venv ## Judge the model in model/ on the prediction log (PREDICTION_LOG_URL): monitoring/report.md; exit 3 on a breach
	$(BIN)/python -m ops.monitor --params params.yaml $(MONITOR_ARGS)

monitor-model: model-from-lock ## Put the model dvc.lock records (what production serves) in model/, verified

# The service's Prometheus alerts (deploy/monitoring/alerts.yaml) and their promtool unit tests beside them;
# tests/ops/test_monitoring_assets.py runs the same two commands. promtool: Debian's prometheus (make system-tools).
alerts-test: ## Check the Prometheus alert rules and run their unit tests (promtool, deploy/monitoring/alerts.test.yaml)
	@command -v promtool >/dev/null || { echo "error: promtool not found: run make system-tools (Debian package prometheus)" >&2; exit 1; }
	promtool check rules deploy/monitoring/alerts.yaml
	promtool test rules deploy/monitoring/alerts.test.yaml

bench-monitor: venv ## make monitor on 10^5 and 10^6 logged predictions (SQLite, PostgreSQL): wall, CPU, peak RSS [BENCH_MONITOR_SIZES=...]
	$(BIN)/python bench/bench_monitor.py $(if $(BENCH_MONITOR_SIZES),--sizes "$(BENCH_MONITOR_SIZES)")

# Scaling out: distributed tuning workers and the benchmarks (docs/scaling.md, docs/benchmarks.md).
.PHONY: tune-worker bench bench-pipeline bench-prepare bench-tune

TUNE_WORKER_INDEX ?=
TUNE_WORKER_ARGS ?=
BENCH_ROWS ?= 10000 100000 1000000
BENCH_TRIALS ?= 2
BENCH_TUNE_TRIALS ?= 24
# Benchmarks of other features join `make bench` when their make targets exist (the service one needs model/).
BENCH_EXTRACT := $(if $(shell grep -lsE '^bench-extract:' mk/*.mk),bench-extract)
BENCH_SERVE := $(if $(and $(wildcard bench/bench_serve.py),$(shell grep -lsE '^bench-serve:' mk/*.mk)),repro bench-serve)

tune-worker: venv data ## One Optuna worker on the tune study in OPTUNA_STORAGE; start any number, then `dvc repro`
	$(BIN)/dvc repro prepare
	$(BIN)/python -m pipeline.tune_worker --params params.yaml --prepared artifacts/prepared \
		$(if $(TUNE_WORKER_INDEX),--worker-index $(TUNE_WORKER_INDEX)) $(TUNE_WORKER_ARGS)

bench: bench-pipeline $(BENCH_EXTRACT) bench-prepare bench-tune $(BENCH_SERVE) ## Run every benchmark (docs/benchmarks.md)

bench-pipeline: venv ## Wall time, CPU and peak memory of `dvc repro` at 10^4, 10^5, 10^6 rows and of a no-op repro
	$(BIN)/python bench/bench_pipeline.py --rows $(BENCH_ROWS) --n-trials $(BENCH_TRIALS)

bench-prepare: venv ## Extraction, validation and preparation (`dvc repro prepare`) at 10^7 rows
	$(BIN)/python bench/bench_pipeline.py --rows 10000000 --until prepare

bench-tune: venv data ## Tuning throughput (trials/minute) with 1 and 2 workers on a throw-away PostgreSQL
	$(BIN)/dvc repro prepare
	$(BIN)/python bench/bench_tune.py --workers 1 2 --n-trials $(BENCH_TUNE_TRIALS)

# The inference service (app/). See docs/serving.md.
PORT ?= 8000

.PHONY: serve bench-serve bench-predlog

serve: venv ## Serve model/ (from `make run`) with gunicorn on 127.0.0.1:$PORT (default 8000)
	@test -f model/metadata.json || { echo "error: model/metadata.json not found: run \`make run\` first" >&2; exit 2; }
	PORT=$(PORT) MODEL_DIR=model $(BIN)/gunicorn -c app/gunicorn.conf.py app.wsgi:app

bench-serve: venv ## Benchmark the service (wrk on loopback) and record the figures in docs/benchmarks.md
	$(BIN)/python bench/bench_serve.py --model model --out docs/benchmarks.md

bench-predlog: venv ## Prediction-log writer rows/s (SQLite, PostgreSQL) vs the service's peak rows/s (docs/benchmarks.md)
	$(BIN)/python bench/bench_predlog.py

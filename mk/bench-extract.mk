# Extraction benchmark: wall time and peak memory of the `extract` stage for 10^5 and 10^6 rows
# (and 10^7 with BENCH_EXTRACT_10M=1). Results go in docs/benchmarks.md under "Extraction".
.PHONY: bench-extract

bench-extract: venv ## Benchmark extraction (time, peak RSS) at 10^5, 10^6 rows; BENCH_EXTRACT_10M=1 adds 10^7
	$(BIN)/python bench/bench_extract.py

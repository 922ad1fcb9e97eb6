# Benchmarks (bench/): repeatable scripts that print figures, 127.0.0.1 only, bounded in time.
.PHONY: bench-pipeline

bench-pipeline: setup ## Dagster's overhead per evolve phase with instant stand-ins: in process and through dagster dev
	$(PY) bench/pipeline_overhead.py $(BENCH_PIPELINE_ARGS)

# The sample app (sample_app/README.md): run it, benchmark it.
.PHONY: app bench-app
APP_HOST ?= 127.0.0.1
APP_PORT ?= 8000

app: setup ## run the sample app on $(APP_HOST):$(APP_PORT) (needs APP_DB_WRITER_URL and APP_DB_READER_URL)
	$(PY) -m sample_app --host $(APP_HOST) --port $(APP_PORT)

bench-app: setup ## benchmark the sample app on 127.0.0.1: throughput vs raw psycopg, 500 req/s spike accuracy
	$(PY) bench/app_throughput.py
	$(PY) bench/spike_accuracy.py

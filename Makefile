# The two commands of the README:
#   make run    set up, ingest the sample knowledge base and serve the agent page on http://127.0.0.1:8000/
#   make test   set up and run the whole test suite
.PHONY: setup run test ingest bench bench-eval lint

VENV ?= .venv
HOST ?= 127.0.0.1
PORT ?= 8000

setup:
	@bash scripts/setup.sh

ingest: setup
	$(VENV)/bin/careqa ingest --sync

run: ingest
	@echo "Demo tokens: demo-pharmacy-agent (Northwind Pharmacy), demo-clinic-agent (Lakeside Family Clinic)"
	$(VENV)/bin/careqa serve --host $(HOST) --port $(PORT)

test: setup
	$(VENV)/bin/python -m pytest -ra $(PYTEST_ARGS)

bench: setup
	$(VENV)/bin/python benchmarks/bench_pipeline.py

# retrieval quality on ../shared/eval (MedQuAD + LiveQA-Med); the first run embeds 17,841 pairs into EVAL_DATA
EVAL_DATA ?= /tmp/careqa-eval
bench-eval: setup
	$(VENV)/bin/python benchmarks/bench_retrieval.py --data-dir $(EVAL_DATA) --json $(EVAL_DATA)/results.json

lint: setup
	$(VENV)/bin/python -m ruff check .
	$(VENV)/bin/python -m ruff format --check .

# distillguard — the project's commands. `make run` and `make test` are the two a new user needs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DG_KAFKA_PORT ?= 19092
export DG_KAFKA_PORT
export DG_KAFKA_PYTHON ?= $(abspath $(PY))
# three pytest processes (pytest-xdist) on the two cores: most Kafka tests wait on workers and the broker, so
# the suite with its reliability tests at full size takes about 12 min (13 in two processes with the small
# sizes); every test has its own topics, group and ports
PYTEST_ARGS ?= -q -n 3 --durations=15
# the hostile-input and tenant-flood tests at full size (issue 7): 100,000 hostile messages through a worker, a
# 1,000,000-tenant flood through the engine and a 50,000-tenant flood through a worker. `make test TEST_SIZES=`
# runs them at their small default sizes (about 2 min less)
SOAK_SIZES := DG_ENGINE_FLOOD_TENANTS=1000000 DG_ENGINE_FLOOD_CAP=20000 DG_HOSTILE_EVENTS=100000 DG_FLOOD_TENANTS=50000
TEST_SIZES ?= $(SOAK_SIZES)

.PHONY: run test docs-check bench bench-core bench-streaming soak venv kafka-start kafka-stop clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

## run: the main job on the embedded default (no broker): simulate a day, detect, evaluate
run: venv
	$(VENV)/bin/distillguard run

## test: install, start the local Kafka, run the whole suite (reliability tests at full size), stop Kafka even when tests fail
test: venv
	bash docker/kafka-local.sh start
	status=0; $(TEST_SIZES) $(PY) -m pytest $(PYTEST_ARGS) || status=$$?; bash docker/kafka-local.sh stop; exit $$status

## docs-check: run the commands of docs/guides/*.md as written (tests/test_guides.py; also part of `make test`)
docs-check: venv
	bash docker/kafka-local.sh start
	status=0; $(PY) -m pytest $(PYTEST_ARGS) tests/test_guides.py || status=$$?; bash docker/kafka-local.sh stop; exit $$status

## bench: the benchmarks; each prints its rate beside a baseline measured in the same run
bench: bench-core bench-streaming

bench-core: venv
	$(PY) bench/bench_codec.py
	$(PY) bench/bench_engine.py

## bench-streaming: needs the local Kafka, which it starts and stops
bench-streaming: venv
	bash docker/kafka-local.sh start
	status=0; $(PY) bench/bench_streaming.py || status=$$?; \
	if [ -f bench/bench_replay.py ]; then $(PY) bench/bench_replay.py || status=$$?; fi; \
	bash docker/kafka-local.sh stop; exit $$status

## soak: only the reliability tests at full size (about 6 min on 2 cores; `make test` runs them too): a
## 1,000,000-tenant engine flood, 100,000 hostile messages and a 50,000-tenant flood through a real worker
soak: venv
	bash docker/kafka-local.sh start
	status=0; $(SOAK_SIZES) $(PY) -m pytest -q -rP -n 2 tests/test_cardinality_engine.py \
	  tests/test_hostile_input_kafka.py tests/test_cardinality_kafka.py || status=$$?; \
	bash docker/kafka-local.sh stop; exit $$status

kafka-start:
	bash docker/kafka-local.sh start

kafka-stop:
	bash docker/kafka-local.sh stop

clean:
	bash docker/kafka-local.sh reset || true
	rm -rf $(VENV) .pytest_cache reports

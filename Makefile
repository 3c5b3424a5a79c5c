# The two commands a fresh machine needs (README): `make demo` and `make test`.
# Each creates .venv on first use and installs the pinned dependency set.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
# Tests run on this many pytest-xdist workers (CI's machine has 2 cores; much of the suite waits
# on subprocesses and sockets). TEST_WORKERS=0 runs them in one process, in pytest's order.
TEST_WORKERS ?= 2

# Never let Flower install packages at run time (it would pull CUDA torch), no telemetry anywhere.
export FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION := 1
export FLWR_TELEMETRY_ENABLED := 0
export RAY_USAGE_STATS_ENABLED := 0
export MLFLOW_DISABLE_TELEMETRY := true
export FLWR_HOME := $(CURDIR)/.flwr

.PHONY: demo test install clean

$(BIN)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/fedcodec demo

# --dist loadgroup: every test is its own unit (an xdist_group's tests one unit together), handed
# to whichever worker is free, in tests/conftest.py's order (longest files first;
# --no-loadscope-reorder keeps it). Plain --dist load would send the first ~130 tests, all the long ones, to one worker.
test: $(BIN)/.installed
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder

clean:
	rm -rf $(VENV) .flwr build *.egg-info

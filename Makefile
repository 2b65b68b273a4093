# The README's commands. Each one sets up what it needs: a fresh Debian machine with
# Python 3.11 is enough.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench docs clean browser

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[plot,image,web,dev]"
	touch $(STAMP)

## run: the main job (see README). It uses the cores it has; on a busy machine training
## drops to one thread by itself (barenet.parallel.Tuner).
run: $(STAMP)
	$(BIN)/barenet data fetch
	$(BIN)/barenet demo

## browser: Debian's chromium, which the browser test drives (installed when missing)
browser:
	test -x /usr/bin/chromium || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }

## test: lint, type-check, fetch the datasets (a visible step: the tests never reach the
## network), the whole suite, then the number-sensitive tests again under a second OpenBLAS
## kernel family. A skipped test fails the run (BARENET_STRICT_TESTS), and pytest exits
## non-zero when it collects nothing.
test: $(STAMP) browser
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/barenet data fetch
	BARENET_STRICT_TESTS=1 $(BIN)/python -m pytest -q
	@other=$$($(BIN)/python tests/second_kernel.py); \
	if [ -n "$$other" ]; then \
	  echo "number-sensitive tests again with OPENBLAS_CORETYPE=$$other"; \
	  OPENBLAS_CORETYPE=$$other BARENET_STRICT_TESTS=1 $(BIN)/python -m pytest -q -m kernels; \
	else echo "no second OpenBLAS kernel family on this CPU: second pass skipped"; fi

## bench: barenet vs PyTorch CPU and scikit-learn, side by side; rewrites BENCHMARKS.md
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python bench/mlp.py
	@other=$$($(BIN)/python tests/second_kernel.py); \
	if [ -n "$$other" ]; then OPENBLAS_CORETYPE=$$other $(BIN)/python bench/mlp.py --quick; \
	else echo "no second OpenBLAS kernel family on this CPU: one family measured"; fi
	$(BIN)/python bench/cnn.py
	$(BIN)/python bench/report.py

## docs: run the guided tour (docs/tour/) and redraw its figures in docs/tour/img/
docs: $(STAMP)
	$(BIN)/python docs/tour/build.py

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

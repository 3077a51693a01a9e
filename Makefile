# The two commands of the README. Each sets up what it needs first (scripts/setup.sh).
#   make demo   - the main job: generate an image from a prompt
#   make test   - the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
GLYPHFUSE := $(VENV)/bin/glyphfuse
PROMPT ?= hello\nworld
OUT ?= out.png

.PHONY: setup demo test bench

setup:
	@bash scripts/setup.sh $(VENV)

demo: setup
	@bash scripts/demo.sh $(GLYPHFUSE) "$(PROMPT)" $(OUT)

test: setup
	$(PY) -m pytest

bench: setup
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

# Two commands do all the set-up on a fresh machine:
#   make demo   train dcgan on Fashion-MNIST, export it to ONNX + TorchScript, sample a grid with onnxruntime
#   make test   run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STEPS  ?=

.PHONY: setup demo test lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	bash scripts/system-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

demo: setup
	@set -e; \
	run=$$($(BIN)/gan train --plugin dcgan $(if $(STEPS),--steps $(STEPS))); \
	name=$$(basename $$run); \
	$(BIN)/gan export $$run --format onnx --format torchscript; \
	$(BIN)/gan sample exported/$$name/generator.onnx -n 64 -o exported/$$name/samples.png; \
	echo "run: $$run   export: exported/$$name   grid: exported/$$name/samples.png"

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .

bench: setup
	$(BIN)/python bench/train_step.py
	$(BIN)/python bench/inference.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache

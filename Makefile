# Thin wrappers: each recipe is one line a person could type by hand.
PY ?= .venv/bin/python
VENV_OK := .venv/.setup-done

.PHONY: setup data demo demo-cnv test test-fast lint bench clean

setup: $(VENV_OK)
$(VENV_OK): pyproject.toml setup.py constraints.txt
	python3 -m venv .venv && .venv/bin/pip install -q -c constraints.txt -e ".[dev,gpu,synth,ray,onnx,brevitas]" && touch $@

data:
	@test -d /usr/share/datasets/fashion-mnist || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; } || echo "install Fashion-MNIST: apt-get install dataset-fashion-mnist"

demo: setup data
	.venv/bin/hwqnn flow --out runs/demo

demo-cnv: setup data
	.venv/bin/hwqnn flow --arch cnv --out runs/cnv

test: setup data
	$(PY) -m pytest -q -m "not slow" && $(PY) -m pytest -q -m slow

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

lint: setup
	.venv/bin/ruff check hwqnn tests && .venv/bin/ruff format --check hwqnn tests && .venv/bin/mypy hwqnn

bench: setup
	.venv/bin/hwqnn bench golden && .venv/bin/hwqnn bench cpu $(if $(wildcard runs/demo/bundle.npz),--bundle runs/demo/bundle.npz) --json runs/bench/cpu.json && .venv/bin/hwqnn bench gpu && .venv/bin/hwqnn bench synth $(if $(wildcard runs/demo/bundle.npz),--bundle runs/demo/bundle.npz) --json runs/bench/synth.json

clean:
	rm -rf runs build sim_build rtl/*/

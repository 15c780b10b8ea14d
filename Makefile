# Thin wrappers: each recipe is one line a person could type by hand.
PY ?= .venv/bin/python
VENV_OK := .venv/.setup-done

.PHONY: setup sim-tools arm-tools data demo demo-cnv demo-qonnx demo-qonnx-w2a2 demo-qonnx-lfc test test-fast lint bench clean

setup: $(VENV_OK) sim-tools arm-tools
$(VENV_OK): pyproject.toml setup.py constraints.txt
	python3 -m venv .venv && .venv/bin/pip install -q -c constraints.txt -e ".[dev,gpu,synth,formal,ray,onnx,brevitas]" && touch $@

# Icarus Verilog, the second simulator (hwqnn sim --engine icarus, make -C sim SIM=icarus)
sim-tools:
	@command -v iverilog >/dev/null || { [ "$$(id -u)" = 0 ] && { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iverilog || { apt-get update -qq && apt-get install -y -qq iverilog; }; }; } >/dev/null || echo "install Icarus Verilog: apt-get install iverilog (macOS: brew install icarus-verilog)"

# An aarch64 cross compiler and qemu-user: the C library's NEON kernel, tested under emulation
arm-tools:
	@{ command -v aarch64-linux-gnu-gcc && command -v qemu-aarch64; } >/dev/null || { [ "$$(id -u)" = 0 ] && { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user; }; }; } >/dev/null || echo "install an aarch64 cross compiler and qemu: apt-get install gcc-aarch64-linux-gnu qemu-user"

data:
	@test -d /usr/share/datasets/fashion-mnist || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; } || echo "install Fashion-MNIST: apt-get install dataset-fashion-mnist"

demo: setup data
	.venv/bin/hwqnn flow --out runs/demo

demo-cnv: setup data
	.venv/bin/hwqnn flow --arch cnv --out runs/cnv

# Bring your own net: FINN's SFC trained with Brevitas, exported as QONNX, imported, simulated
demo-qonnx: setup data
	$(PY) examples/brevitas_sfc.py runs/qonnx/sfc.onnx
	.venv/bin/hwqnn import runs/qonnx/sfc.onnx -o runs/qonnx/sfc.npz --input-scale 0.00784313725490196 --input-bias -1 --check
	.venv/bin/hwqnn flow --bundle runs/qonnx/sfc.npz --out runs/qonnx

demo-qonnx-w2a2: setup data
	$(PY) examples/brevitas_sfc.py runs/qonnx-w2a2/sfc.onnx --w-bits 2 --a-bits 2 --bias
	.venv/bin/hwqnn import runs/qonnx-w2a2/sfc.onnx -o runs/qonnx-w2a2/sfc.npz --input-scale 0.00784313725490196 --input-bias -1 --check
	.venv/bin/hwqnn flow --bundle runs/qonnx-w2a2/sfc.npz --out runs/qonnx-w2a2

demo-qonnx-lfc: setup data
	$(PY) examples/brevitas_sfc.py runs/qonnx-lfc/sfc.onnx --final-bn
	.venv/bin/hwqnn import runs/qonnx-lfc/sfc.onnx -o runs/qonnx-lfc/sfc.npz --input-scale 0.00784313725490196 --input-bias -1 --check
	.venv/bin/hwqnn flow --bundle runs/qonnx-lfc/sfc.npz --out runs/qonnx-lfc

test: setup data
	$(PY) -m pytest -q -m "not slow" && $(PY) -m pytest -q -m slow

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

lint: setup
	.venv/bin/ruff check hwqnn tests examples scripts && .venv/bin/ruff format --check hwqnn tests examples scripts && .venv/bin/mypy hwqnn

bench: setup
	.venv/bin/hwqnn bench golden && .venv/bin/hwqnn bench cpu $(if $(wildcard runs/demo/bundle.npz),--bundle runs/demo/bundle.npz) --json runs/bench/cpu.json && .venv/bin/hwqnn bench gpu && .venv/bin/hwqnn bench synth $(if $(wildcard runs/demo/bundle.npz),--bundle runs/demo/bundle.npz) --json runs/bench/synth.json

clean:
	rm -rf runs build sim_build rtl/*/

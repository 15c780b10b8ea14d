"""Inject a fault: a copy of a bundle with one threshold moved, for checking that the RTL-vs-
golden comparison finds it and shows it.

    python examples/inject_fault.py runs/demo/bundle.npz runs/broken/bundle.npz --layer 1 --neuron 7
    hwqnn sim runs/demo/bundle.npz --rtl-bundle runs/broken/bundle.npz --all --out runs/broken

The RTL generated from the broken copy is simulated against the good bundle's golden model: the
report names the first mismatching image, the layer and neuron (layer 1, neuron 7), and the
waveform of that image with a GTKWave save file. Verilog you edited by hand goes in with
``--rtl DIR`` instead (a directory ``hwqnn rtl`` wrote): the mismatch and its waveform are
reported the same way, but no unit of that Verilog can be re-run alone to name the neuron.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from hwqnn import bundle as bundle_io


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle")
    ap.add_argument("output")
    ap.add_argument("--layer", type=int, default=1)
    ap.add_argument("--neuron", type=int, default=7)
    ap.add_argument("--delta", type=int, default=16, help="added to the neuron's thresholds")
    args = ap.parse_args()
    b = bundle_io.load(args.bundle)
    layer = b.layers[args.layer]
    t = layer.thresholds.copy()
    t[args.neuron] += args.delta
    layers = list(b.layers)
    layers[args.layer] = dataclasses.replace(layer, thresholds=t)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    bundle_io.save(dataclasses.replace(b, layers=tuple(layers)), args.output)
    print(f"{args.output}: layer {args.layer} neuron {args.neuron} thresholds "
          f"{layer.thresholds[args.neuron].tolist()} -> {t[args.neuron].tolist()}")  # fmt: skip


if __name__ == "__main__":
    main()

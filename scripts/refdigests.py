"""Digests that prove a back-end refactor changed nothing: the generated files of the reference
nets (``hwqnn bench synth``'s six shapes plus a bundle with input quantization) and the integer
outputs of golden, the C library, the GPU path (Triton's interpreter) and the QONNX executor on
a few random images of each.

    python scripts/refdigests.py [--no-outputs] > before.txt   # ... change ...
    python scripts/refdigests.py > after.txt && diff before.txt after.txt

Every line is ``name  file-or-output  sha256``; identical files mean byte-identical Verilog.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("TRITON_INTERPRET", "1")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def reference_nets() -> list[tuple[str, object, str | None]]:
    """``hwqnn bench synth``'s reference nets, and the small net with input quantization."""
    from hwqnn.bench import reference_nets as synth_nets
    from hwqnn.randnet import random_bundle, with_input_thresholds

    nets: list[tuple[str, object, str | None]] = list(synth_nets())
    small_q = random_bundle(1, 64, (128, 128), 4, in_bits=1)
    nets.append(("small-inputq", with_input_thresholds(small_q, 3), "1x8,1x16,1x1"))
    return nets


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-outputs", action="store_true", help="generated files only")
    ap.add_argument("--images", type=int, default=64)
    args = ap.parse_args()
    from hwqnn import golden
    from hwqnn.hw.emit import generate
    from hwqnn.hw.folding import balance, parse_folds
    from hwqnn.hw.plan import plan

    for name, b, fold in reference_nets():
        with tempfile.TemporaryDirectory() as td:
            generate(plan(b, parse_folds(fold) if fold else balance(b)), Path(td))
            for f in ("hwqnn_top.v", "hwqnn_driver.h", "manifest.json"):
                print(f"{name:14s} {f:16s} {_sha((Path(td) / f).read_bytes())}")
        if args.no_outputs:
            continue
        rng = np.random.default_rng(7)
        x = rng.integers(0, 2**b.raw_bits, size=(args.images, b.in_features))
        g = golden.run(b, x, keep=False).scores
        print(f"{name:14s} {'golden':16s} {_sha(g.astype('<i8').tobytes())}")
        from hwqnn.clib import CNet

        try:
            with CNet(b) as net:
                c = net.scores(x.astype(np.uint8))
            same = "== golden" if np.array_equal(c, g) else "!= golden"
        except ValueError as e:
            same = f"refused: {str(e)[:50]}"
        print(f"{name:14s} {'clib':16s} {same}")
        from hwqnn.gpu.infer import infer

        gp = infer(b, x[:8])
        print(f"{name:14s} {'gpu-interp':16s} {'== golden' if np.array_equal(gp, g[:8]) else '!='}")
        if b.in_features <= 1024:
            from hwqnn.onnxio.export import save_onnx, to_model
            from hwqnn.onnxio.run import execute

            with tempfile.TemporaryDirectory() as td:
                p = save_onnx(b, Path(td) / "m.onnx")
                print(f"{name:14s} {'onnx-model':16s} {_sha(p.read_bytes())}")
                o = execute(to_model(b, batch=8), x[:8])
                ok = "== golden" if np.array_equal(o, g[:8]) else "!= golden"
                print(f"{name:14s} {'onnx-exec':16s} {ok}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

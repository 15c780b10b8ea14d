"""GPU inference with Triton: packed XNOR-popcount GEMM with fused thresholds.

Without a CUDA device the kernels run on the CPU through Triton's interpreter
(``TRITON_INTERPRET=1``, set here before Triton is imported): that is how they are tested for
bit-exactness on machines without a GPU. Speed is only meaningful on a GPU.
"""

from __future__ import annotations

import os

if "TRITON_INTERPRET" not in os.environ:
    import torch

    if not torch.cuda.is_available():
        os.environ["TRITON_INTERPRET"] = "1"

"""QONNX in and out: a bundle as a QONNX graph (:mod:`hwqnn.onnxio.export`), and QONNX graphs as
Brevitas and FINN write them folded exactly into a bundle (:mod:`hwqnn.onnxio.importer`).

The graph hwqnn writes computes on *levels* (the odd integers a code stands for, see
:mod:`hwqnn.bundle`) in float32, which is exact while every dot product stays below ``2**24``:

* input: ``Mul``/``Add`` making an 8-bit pixel ``x`` the level ``2x - 255`` (identity input), or a
  ``MultiThreshold`` on the raw value with ``out_scale = 2, out_bias = -(2**b - 1)``;
* weights: initializers of levels behind a ``BipolarQuant`` (1 bit, scale 1) or a ``Quant``
  (``k`` bits: scale 2, zero point ``(2**k - 1) / 2``, unsigned), which give the levels back
  exactly and tell FINN their datatypes;
* dense: ``MatMul``; convolution: ``Pad`` with the lowest level (hwqnn pads with code 0) and
  ``Conv`` on NCHW; max-pool: ``MaxPool``; the flatten before a dense layer: ``Transpose`` to
  NHWC and ``Reshape`` (the bundle's HWC order);
* a hidden layer's thresholds: ``Mul`` by the per-channel sign (-1 where ``flip`` is set) and a
  ``MultiThreshold`` in the dot-product domain (``tau = 2T - CK``) with ``out_scale = 2,
  out_bias = -(2**k - 1)``; the last layer's output is the integer score.

The graph's input is the raw image: ``[N, in_features]`` for a dense first layer, ``[N, C, H, W]``
(FINN's NCHW) for a convolution.
"""

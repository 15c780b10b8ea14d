"""The bundle: the one contract between hwqnn's stages, and the one statement of its bit layout.

A bundle is a NumPy ``.npz`` file (loadable with ``np.load(path, allow_pickle=False)``) that
holds a trained quantized network (dense, convolution and max-pool layers, see
:mod:`hwqnn.layers`) as packed bits and integer thresholds. Every consumer (golden
model, Verilog generator, GPU kernels, op counter) reads only this file.

Values and codes
----------------
A ``k``-bit quantity is stored as an unsigned *code* ``c`` in ``0 .. 2**k - 1`` (``M = 2**k - 1``)
that stands for an integer *value* under its tensor's *encoding* (version 4; every earlier bundle
is all odd levels, and a version-4 entry without encoding keys is too):

* ``odd`` (the default): the odd level ``q = 2*c - M``. ``k = 1``: bit 1 means +1, bit 0 means
  -1, ``sign(0) = +1`` everywhere (training, export, golden, RTL, GPU); ``k = 2``: codes 0..3
  stand for -3, -1, +1, +3 (in training: -1, -1/3, +1/3, +1); ``k = 8`` (the first layer's
  input): a pixel ``x`` is its own code and stands for ``2*x - 255``, the BNN paper's bit-plane
  scheme made exact.
* ``unsigned``: ``c`` itself (ReLU activations, pixels as they are).
* ``signed``: ``c - 2**(k-1)``, the two's complement range ``-2**(k-1) .. 2**(k-1) - 1`` stored as
  offset binary (the two's complement bit pattern with its top bit inverted), so codes keep the
  values' order (max-pooling and thresholds work on codes) and code 0 is the lowest value.
  Narrow range (no ``-2**(k-1)``) is the same encoding with code 0 unused.

Every encoding is ``value = gain * c + beta`` (gain 2 for odd, else 1; ``beta`` = ``-M``, 0 or
``-2**(k-1)``). A weighted layer has three: ``in_enc`` (its input codes: layer 0's is the
input's), ``w_enc`` (its weights) and ``out_enc`` (its output codes; none on the last layer).
A max-pool keeps its input's (``enc``).

Input quantization
------------------
Raw input values (8-bit pixels) become layer 0's codes as ``meta.input`` says, in every
implementation (the RTL in its stream front end). Without ``"quant"`` (every version-1 and -2
bundle) a raw value is its own code. With ``"quant": "thresholds"`` (version 3) the array
``input.thresholds`` int64 ``[channels, 2**bits - 1]`` (ascending, values in ``0 ..
2**raw_bits``) gives element ``g`` (HWC order) the code ``sum_i [raw >= T[g % channels, i]]``,
like a hidden layer's thresholds; ``channels`` is 1 or the input's ``C``. A 1-bit code with
threshold 128 is the binarized input of FINN's LFC (:mod:`hwqnn.layers.inputq`).

The accumulator
---------------
Every implementation computes the same non-negative *accumulator* ``A`` of a row over its fan-in
``K``, from the input codes' bit-planes ``a_n`` and the weight codes' bit-planes ``w_m``:

    A = sum_n sum_m 2**(n+m) * popcount(op_m(a_n, w_m)),   0 <= A <= C*K,
    C = (2**ka - 1) * (2**kw - 1),

where ``op_m`` depends on the weight encoding only: ``XNOR`` for odd weights; ``AND`` for unsigned
weights and for the planes of signed weights below the top one; ``NOR`` (``~a & ~w``) for the top
plane of signed weights. Per input element ``j`` the hardware leaf is ``L_j = sum_m 2**m *
leaf_m`` with ``leaf_m = w_m ? a : ~a`` (XNOR), ``w_m ? a : 0`` (AND) or ``w_m ? 0 : ~a`` (NOR) on
the ``ka``-bit input code ``a`` (``~a = M - a``); ``A = sum_j L_j``. For 1-bit odd codes this is
XNOR-popcount.

Each leaf differs from ``a`` times plane ``m``'s share of the weight's value (odd: ``2**m *
(2*w_m - 1)``; unsigned and signed below the top: ``2**m * w_m``; signed top: ``-2**m * (1 -
w_m)``) by a term that does not depend on ``a``: ``M * 2**m * (1 - w_m)`` for XNOR and NOR, 0
for AND. So
the dot product of the *values* is

    s = sum_j value_in(a_j) * value_w(w_j) = gain_in * A + D[o],

with one integer ``D[o]`` per row that depends on the weights only: ``D = s0 - gain_in * A0``,
where ``s0`` and ``A0`` are the dot product and the accumulator of the all-zero input code vector
(``s0 = beta_in * sum_j value_w(w_j)``). For odd inputs and weights ``D = -C*K`` and ``s = 2*A -
C*K``: the odd-level arithmetic of every earlier version, unchanged. No per-frame sum of the
inputs is needed for any encoding, and the accumulator's range (what thresholds are compared in)
is ``0 .. C*K`` for all of them.

Packing order
-------------
Input index ``j`` of a plane is bit ``j % 64`` (LSB first) of 64-bit word ``j // 64``. Words are
``uint64``. A row of fan-in ``K`` takes ``ceil(K / 64)`` words per plane.

Images and convolutions (version 2)
-----------------------------------
An image-shaped activation ``(height, width, channels)`` is the code vector in HWC order: index
``(y * width + x) * channels + c``. A ``conv2d`` layer's weights are a dense matrix of
``out_channels`` rows over ``kernel * kernel * in_channels`` columns in im2col order: column
``(ky * kernel + kx) * in_channels + c`` meets input pixel ``(y*stride + ky - padding,
x*stride + kx - padding)``, channel ``c``. Positions outside the image read the input's *zero
code*: the value 0 (code ``2**(k-1)`` signed, 0 unsigned) or, for odd levels, which have no 0,
code 0 (the lowest level: -1 for 1-bit codes, pixel 0 for 8-bit input); a real input of the dot
product, unlike the pad bits below. Output pixel ``(y, x)`` then follows the dense rules with
that column vector. A ``maxpool2d`` layer (no arrays, no padding) gives the largest code of each
window per channel. A dense layer after them reads the flattened HWC vector.

Padding
-------
The pad bits above ``K`` in the last word are 1 in weights and 0 in inputs, so every op gives 0
(``XNOR(0, 1) = AND(0, 1) = NOR(0, 1) = 0``) and a pad bit never adds to ``A``. Hardware that
pads ``K`` to a multiple of its SIMD width uses the same rule.

Thresholds
----------
Hidden layers fold BatchNorm and the activation quantizer into integer thresholds in the
accumulator domain. Per output channel ``o`` there is a flip bit and ``2**k_out - 1`` ascending
thresholds ``T[o, 0..]``:

    A'  = (C*K - A) if flip[o] else A           # flip is set for BatchNorm gamma < 0
    out = sum_i [A' >= T[o, i]]                  # the output code, 0 .. 2**k_out - 1

A threshold of 0 is always met, one of ``C*K + 1`` never (that is how gamma = 0 folds to a
constant). Output code ``out`` stands for a value under the layer's ``out_enc``. The last layer
has no thresholds: its output is the signed integer class score

    score[o] = scale[o] * s + bias[o] = scale[o] * (gain_in * A + D[o]) + bias[o]

(``2*A - C*K`` for an odd-level net without a bias or a scale) and the predicted class is the
lowest index of the maximum score. The *score bias* ``layer{i}.bias`` (version 4, meta ``"bias":
true`` on the last layer) is in the scaled score's units; ``|bias| < 2**48``. The *score scale*
``layer{i}.scale`` (version 5, meta ``"scale": true`` on the last layer; ``scale[o] = 1``
without it) is a positive integer per class, ``1 .. 2**32 - 1``, and every score over
accumulators ``0 .. C*K`` stays below ``2**62`` in magnitude. It is how a net that ends in a
per-class affine map ``y[o] = a[o] * s + b[o]`` (BNN-PYNQ's LFC ends in a per-class BatchNorm)
is held in integers: ``scale = a * 2**F / g`` and ``bias = b * 2**F / g`` for a fraction length
``F`` and a common divisor ``g`` (:mod:`hwqnn.onnxio.importer` states when that is exact and when
the argmax of the integers still equals the float map's).

Flat file (the C library's input)
---------------------------------
``hwqnn flat BUNDLE -o NET`` (:mod:`hwqnn.flat`) writes the same network for ``sw/`` (C99, no
zip or JSON parser needed). Little-endian throughout; every array starts 8-byte aligned::

    header, 32 bytes     char magic[8] = "HWQNNFLT"; u32 version; u32 n_layers;
                         u32 in_features (raw inputs, HWC); u32 in_bits (layer 0's);
                         u32 classes; u32 0
    input record         versions 2 to 5: u32 raw_bits; u32 channels;
                         u32 levels = 2**in_bits - 1; u32 0; then
                         i64 thresholds[channels][levels]. Versions 3 to 5 write it for every
                         net: channels = levels = 0 and raw_bits = in_bits is the identity
    layer table          versions 1 and 2 (dense layers only): n_layers records of 8 x u32:
                         in_features, out_features, in_bits, w_bits, out_bits,
                         words = ceil(in_features / 64), 0, 0.
                         Versions 3 to 5 (any kind): n_layers records of 16 x u32: kind (0
                         dense, 1 conv2d, 2 maxpool2d), in (codes in), out (codes out),
                         in_bits, w_bits, out_bits, rows, cols, words = ceil(cols / 64),
                         height, width, channels, kernel, stride, padding, and 0 (version 3)
                         or the encodings (version 4): in_enc | w_enc << 2 | out_enc << 4 |
                         bias << 6 (| scale << 7, version 5), each encoding 0 odd, 1
                         unsigned, 2 signed (a max-pool: w_enc 0, out_enc = in_enc; out_enc 0
                         and the bias and scale bits on the last layer only). A dense layer:
                         rows = out,
                         cols = in, no window (0s). A conv2d: the window over the
                         height x width x channels input, rows = out_channels,
                         cols = kernel * kernel * channels, out = out_h * out_w * rows. A
                         maxpool2d: w_bits = rows = cols = words = padding = 0 and
                         out_bits = in_bits
    per matrix, in order u64 weights[rows][w_bits][words]      (as ``layer{i}.weights``)
                         hidden layers only: i64 thresholds[rows][2**out_bits - 1];
                         u8 flip[rows], zero-padded to a multiple of 8 bytes;
                         the last layer with the bias bit: i64 bias[rows]; with the scale
                         bit: i64 scale[rows]
    trailer              u64 FNV-1a-64 of every byte before it

A net is written with the oldest version that holds it, so an earlier net's file is unchanged:
dense layers as version 1 (identity input) or 2; with a conv2d or maxpool2d layer as version 3;
with an encoding other than odd levels or a score bias as version 4; with a score scale as
version 5. A reader checks the
checksum, then every field and the chain between layers (``in``, ``in_bits`` and ``in_enc`` of
layer ``i+1`` are ``out``, ``out_bits`` and ``out_enc`` of layer ``i``), then that the file's
length is exactly what the table implies, before it allocates anything. The C library's scores
are int32 (``scale * (gain*A + D) + bias``, ``D`` computed from the weights at load): a net
whose scores could leave int32 is refused.

Fields
------
``meta``                 JSON text (0-d unicode array): schema, version, layers, input, classes.
``input.thresholds``     int64 ``[channels, 2**bits - 1]`` (``meta.input.quant`` only).
``layer{i}.weights``     uint64 ``[out, kw, words]``: weight plane ``m`` of row ``o``.
``layer{i}.thresholds``  int64 ``[out, 2**k_out - 1]`` (hidden layers only).
``layer{i}.flip``        uint8 ``[out]`` of 0/1 (hidden layers only).
``layer{i}.bias``        int64 ``[out]``, the score bias (the last layer, meta ``"bias": true``).
``layer{i}.scale``       int64 ``[out]``, the score scale (the last layer, meta ``"scale": true``).
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from hwqnn import atomic, npzread
from hwqnn.bundle_schema import SCHEMA, check, refuse
from hwqnn.errors import InputError
from hwqnn.layers import KINDS, NetLayer, check_chain, input_fits, size
from hwqnn.layers.dense import Layer
from hwqnn.layers.encoding import ODD, Encoding
from hwqnn.layers.inputq import InputQuant, image_channels
from hwqnn.packing import (
    WORD_BITS,
    code_to_level,
    level_scale,
    pack_bits,
    pack_codes,
    to_planes,
    unpack_bits,
    unpack_codes,
    words_for,
)

__all__ = [
    "WORD_BITS",
    "Bundle",
    "BundleError",
    "InputQuant",
    "Layer",
    "NetLayer",
    "UnsupportedKindError",
    "code_to_level",
    "level_scale",
    "load",
    "make_layer",
    "pack_bits",
    "pack_codes",
    "save",
    "to_planes",
    "unpack_bits",
    "unpack_codes",
    "validate",
    "words_for",
]


class BundleError(InputError):
    """A bundle file is missing, corrupt, foreign or inconsistent. The message names the field."""


class UnsupportedKindError(InputError):
    """A valid bundle holds a layer kind (or scores beyond a consumer's integers) that this
    consumer does not run."""


# --------------------------------------------------------------------------------------------
# The bundle object
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bundle:
    """A trained network as packed bits and integer thresholds. See the module docstring."""

    layers: tuple[NetLayer, ...]
    input_shape: tuple[int, ...]
    classes: tuple[str, ...]
    info: dict[str, Any] = field(default_factory=dict)
    input_quant: InputQuant | None = None  # None: the identity on layer 0's in_bits

    def __post_init__(self) -> None:
        if self.input_quant is None and self.layers:
            object.__setattr__(self, "input_quant", InputQuant.identity(self.layers[0].in_bits))

    @property
    def quant(self) -> InputQuant:
        """How raw input values become layer 0's codes (:mod:`hwqnn.layers.inputq`)."""
        assert self.input_quant is not None
        return self.input_quant

    @property
    def raw_bits(self) -> int:
        """Bits of a raw input value (what the stream, the GPU and the C library take in)."""
        return self.quant.raw_bits

    def quantize_input(self, raw: np.ndarray) -> np.ndarray:
        """Layer 0's codes int64 ``[N, in_features]`` of raw inputs ``[N, in_features]``."""
        return self.quant.apply(raw)

    @property
    def in_features(self) -> int:
        """Inputs per image (the flattened size of layer 0's input)."""
        return self.layers[0].in_size

    @property
    def num_classes(self) -> int:
        return self.layers[-1].out_size

    @property
    def version(self) -> int:
        """The oldest bundle version that holds every kind used (old readers keep reading
        the nets they can run)."""
        return max(
            max(ly.version for ly in self.layers),
            1 if self.quant.is_identity else InputQuant.since,
        )

    def dense(self, consumer: str) -> tuple[Layer, ...]:
        """The layers, for a consumer that runs dense layers only; any other kind is refused
        with one line naming the layer, the kind and the consumer."""
        for i, ly in enumerate(self.layers):
            if not isinstance(ly, Layer):
                raise UnsupportedKindError(
                    f"layer {i} is a {ly.kind!r} layer: {consumer} runs dense layers only"
                )
        return cast(tuple[Layer, ...], self.layers)

    def arch(self) -> str:
        """A one-line description, e.g. ``784(8b)-256(1b)-256(1b)-10 w1``."""
        parts = [f"{self.in_features}({self.quant.label()})"]
        parts += [layer.label() for layer in self.layers]
        w_bits = [w for ly in self.layers if (w := getattr(ly, "w_bits", None)) is not None]
        return "-".join(parts) + f" w{w_bits[1 if len(w_bits) > 1 else 0]}"

    def meta(self) -> dict[str, object]:
        return {
            "schema": SCHEMA,
            "version": self.version,
            "input": {
                "shape": list(self.input_shape),
                "bits": self.layers[0].in_bits,
                **self.quant.meta(),
            },
            "classes": list(self.classes),
            "layers": [layer.meta() for layer in self.layers],
            "info": self.info,
        }

    def digest(self) -> str:
        """SHA-256 of the bundle's content (meta and arrays), independent of the file's bytes."""
        h = hashlib.sha256()
        for k, v in sorted(self.arrays().items()):
            h.update(k.encode() + str(v.dtype).encode() + str(v.shape).encode())
            h.update(np.ascontiguousarray(v).tobytes())
        return h.hexdigest()

    def arrays(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {"meta": np.array(json.dumps(self.meta(), sort_keys=True))}
        out.update(self.quant.arrays())
        for i, layer in enumerate(self.layers):
            out.update(layer.arrays(i))
        return out


def make_layer(
    weight_codes: np.ndarray,
    in_bits: int,
    w_bits: int,
    out_bits: int,
    thresholds: np.ndarray | None = None,
    flip: np.ndarray | None = None,
    *,
    in_enc: Encoding = ODD,
    w_enc: Encoding = ODD,
    out_enc: Encoding = ODD,
    bias: np.ndarray | None = None,
    scale: np.ndarray | None = None,
) -> Layer:
    """Build a :class:`Layer` from unpacked weight codes ``[out, in]`` (packs them)."""
    out_f, in_f = weight_codes.shape
    layer = Layer(
        in_features=int(in_f),
        out_features=int(out_f),
        in_bits=in_bits,
        w_bits=w_bits,
        out_bits=out_bits,
        weights=pack_codes(weight_codes, w_bits, pad=1),
        thresholds=None if thresholds is None else np.asarray(thresholds, dtype=np.int64),
        flip=None if flip is None else np.asarray(flip, dtype=np.uint8),
        in_enc=in_enc,
        w_enc=w_enc,
        out_enc=out_enc,
        has_bias=bias is not None,
        bias=None if bias is None else np.asarray(bias, dtype=np.int64),
        has_scale=scale is not None,
        score_scale=None if scale is None else np.asarray(scale, dtype=np.int64),
    )
    layer.check(-1, refuse("<memory>", BundleError))
    return layer


# --------------------------------------------------------------------------------------------
# Validation, save, load
# --------------------------------------------------------------------------------------------


def validate(bundle: Bundle, where: str = "<memory>") -> None:
    """Check every field against the schema; raise :class:`BundleError` naming the field."""
    fail = refuse(where, BundleError)
    if not bundle.layers:
        fail("meta.layers", "at least one layer", 0)
    for i, layer in enumerate(bundle.layers):
        if KINDS.get(layer.kind) is None:
            fail(f"layer{i}.kind", f"one of {', '.join(KINDS)}", repr(layer.kind))
        layer.check(i, fail)
        last = i == len(bundle.layers) - 1
        if layer.is_last != last:
            fail(f"layer{i}.out_bits", "0 only on the last", layer.out_bits)
        if i:
            check_chain(bundle.layers[i - 1], layer, f"layer{i}", fail)
    if not input_fits(bundle.input_shape, bundle.layers[0]):
        want = bundle.layers[0].in_shape
        fail("meta.input.shape", f"{size(want)} inputs as layer 0 reads them ({list(want)})",
             list(bundle.input_shape))  # fmt: skip
    if len(bundle.classes) != bundle.num_classes:
        fail("meta.classes", f"{bundle.num_classes} names", len(bundle.classes))
    if bundle.quant.bits != bundle.layers[0].in_bits:
        fail("meta.input.bits", f"{bundle.layers[0].in_bits} (layer 0's in_bits)",
             bundle.quant.bits)  # fmt: skip
    bundle.quant.check(image_channels(bundle.input_shape), fail)


def save(bundle: Bundle, path: str | os.PathLike[str]) -> Path:
    """Validate and write ``bundle`` atomically (temporary file + rename): no half-written file."""
    path = Path(path)
    validate(bundle, str(path))
    atomic.write_bytes(path, lambda f: np.savez(f, **bundle.arrays()))  # type: ignore[arg-type]
    return path


def load(path: str | os.PathLike[str]) -> Bundle:
    """Load and validate a bundle. Raises :class:`BundleError` with the file and field named.

    ``meta`` is checked against the strict schema (:mod:`hwqnn.bundle_schema`) before any array
    is read, and every array is read bounded by what ``meta`` implies (:mod:`hwqnn.npzread`): a
    corrupt or hostile file is refused without allocating more than a valid one would."""
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise BundleError(f"{where}: no such bundle file")
    fail = refuse(where, BundleError)
    try:
        size = path.stat().st_size
        with zipfile.ZipFile(path) as zf:
            infos = npzread.check_members(zf, size, fail)
            spec = check(npzread.read_meta(zf, infos, fail), fail)
            expected = spec.arrays()
            for name in infos:
                if name != "meta" and name not in expected:
                    fail(name, "no such array for this meta", "a member")
            arrays = {}
            for name, (dtype, shape) in expected.items():
                if name not in infos:
                    fail(name, f"an array of shape {shape}", "nothing")
                nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
                if infos[name].file_size > nbytes + npzread.MAX_HEADER_BYTES + 16:
                    fail(name, f"about {nbytes} bytes", f"{infos[name].file_size} declared")
                arrays[name] = npzread.read_array(zf, infos[name], name, dtype, shape, fail, nbytes)
    except BundleError:
        raise
    except Exception as e:  # zipfile, zlib and numpy raise many kinds on hostile bytes (BadZipFile,
        # zlib.error, struct.error, EOFError, NotImplementedError, ...): all mean "unreadable"
        raise BundleError(
            f"{where}: not a readable bundle (truncated or corrupt .npz: {type(e).__name__}: "
            f"{str(e)[:120]})"
        ) from e
    layers = tuple(ly.build(i, arrays) for i, ly in enumerate(spec.layers))
    quant = spec.input_quant.build(arrays)
    bundle = Bundle(layers, spec.input_shape, spec.classes, dict(spec.info), quant)
    validate(bundle, where)
    return bundle

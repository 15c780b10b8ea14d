"""Input quantization in the bundle (``meta.input.quant``) and the plain-NumPy bundle builder.

The reference here is written from the definitions in the docstrings (a dot product of levels,
``code = sum_i [raw >= T[g % C, i]]``), not from the code under test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hwqnn import bundle as B  # noqa: N812
from hwqnn import golden
from hwqnn.fromarrays import build_bundle, conv2d, dense, maxpool2d
from hwqnn.layers.inputq import InputQuant

RNG = np.random.default_rng


def _levels(rng: np.random.Generator, shape: tuple[int, ...], bits: int) -> np.ndarray:
    top = 2**bits - 1
    return 2 * rng.integers(0, top + 1, shape) - top


def _quantize_by_definition(raw: np.ndarray, t: np.ndarray) -> np.ndarray:
    out = np.zeros(raw.shape, np.int64)
    for n in range(raw.shape[0]):
        for g in range(raw.shape[1]):
            out[n, g] = sum(int(raw[n, g]) >= int(v) for v in t[g % t.shape[0]])
    return out


@pytest.mark.parametrize(("bits", "channels", "raw_bits"), [(1, 1, 8), (2, 3, 8), (4, 3, 5),
                                                            (1, 1, 1), (8, 1, 8)])  # fmt: skip
def test_input_codes_follow_the_definition(bits: int, channels: int, raw_bits: int) -> None:
    rng = RNG(bits * 10 + channels)
    t = np.sort(rng.integers(0, 2**raw_bits + 1, (channels, 2**bits - 1)), axis=1)
    t[0, 0] = 0  # always met
    raw = rng.integers(0, 2**raw_bits, (7, 6 * channels))
    q = InputQuant(raw_bits, bits, t)
    q.check(channels, B.refuse("<t>", B.BundleError))
    assert np.array_equal(q.apply(raw), _quantize_by_definition(raw, t))


def test_raw_values_outside_their_width_are_refused() -> None:
    q = InputQuant(8, 1, np.array([[128]]))
    with pytest.raises(ValueError, match=r"input values must be in 0\.\.255 .* found 0\.\.256"):
        q.apply(np.array([[0, 256]]))


def _dense_net(rng: np.random.Generator, k: int, bits_in: int) -> tuple[list, list]:
    w1, w2 = _levels(rng, (9, k), 1), _levels(rng, (4, 9), 1)
    t1 = rng.integers(-k * (2**bits_in - 1), k * (2**bits_in - 1), 9).astype(float) + 0.5
    return [dense(w1, thresholds=t1, flip=rng.integers(0, 2, 9)), dense(w2)], [w1, t1, w2]


def test_builder_net_scores_equal_the_dot_products_of_levels() -> None:
    """A binarized-input MLP from ±1 arrays: golden == the float-free reference, every score."""
    rng = RNG(3)
    k = 30
    specs, (w1, t1, w2) = _dense_net(rng, k, 1)
    flip = specs[0].flip
    net = build_bundle(specs, input_shape=(5, 6), input_bits=1, input_thresholds=[100])
    raw = rng.integers(0, 256, (50, k))
    x = np.where(raw >= 100, 1, -1)  # the binarized input as levels
    s1 = x @ w1.T
    h = np.where(np.where(flip == 1, -s1, s1) >= np.ceil(t1), 1, -1)
    want = h @ w2.T
    assert np.array_equal(golden.scores(net, raw), want)
    assert net.version == 3 and net.arch().startswith("30(8b>1b)-")


def test_builder_eight_bit_pixels_and_k_bit_layers() -> None:
    rng = RNG(4)
    k = 20
    w1 = _levels(rng, (6, k), 2)
    t1 = np.sort(rng.integers(-3000, 3000, (6, 3)), axis=1)
    w2 = _levels(rng, (3, 6), 2)
    net = build_bundle([dense(w1, t1, w_bits=2), dense(w2, w_bits=2)], input_shape=(k,))
    raw = rng.integers(0, 256, (40, k))
    s1 = (2 * raw - 255) @ w1.T
    codes = (s1[:, :, None] >= t1[None]).sum(-1)
    want = (2 * codes - 3) @ w2.T
    assert np.array_equal(golden.scores(net, raw), want)
    assert net.version == 1 and net.meta()["input"] == {"shape": [k], "bits": 8}


def test_builder_conv_net_with_per_channel_input_thresholds() -> None:
    rng = RNG(5)
    h, w, c = 7, 6, 3
    t_in = np.array([[64, 128, 192], [10, 20, 30], [0, 100, 256]])
    wc = _levels(rng, (4, 3, 3, c), 1)
    tc = rng.integers(-20, 20, (4, 1))
    wd = _levels(rng, (5, 3 * 3 * 4), 1)
    net = build_bundle(
        [conv2d(wc, tc, padding=1), maxpool2d(2), dense(wd)],
        input_shape=(h, w, c), input_bits=2, input_thresholds=t_in,
    )  # fmt: skip
    raw = rng.integers(0, 256, (6, h * w * c))
    codes = _quantize_by_definition(raw, t_in).reshape(-1, h, w, c)
    lv = np.pad(2 * codes - 3, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-3)  # code 0
    s = np.zeros((6, h, w, 4), np.int64)
    for y in range(h):
        for x in range(w):
            s[:, y, x] = np.einsum("nijc,oijc->no", lv[:, y : y + 3, x : x + 3], wc)
    bit = (s >= tc[:, 0]).astype(np.int64)
    pooled = bit[:, :6, :6].reshape(6, 3, 2, 3, 2, 4).max(axis=(2, 4))
    want = (2 * pooled.reshape(6, -1) - 1) @ wd.T
    assert np.array_equal(golden.scores(net, raw), want)


def test_quantized_input_round_trips_through_a_file(tmp_path: Path) -> None:
    rng = RNG(6)
    specs, _ = _dense_net(rng, 12, 1)
    net = build_bundle(specs, input_shape=(12,), input_bits=1, input_thresholds=[[128]])
    back = B.load(B.save(net, tmp_path / "q.npz"))
    assert back.digest() == net.digest()
    assert back.meta()["input"] == {"shape": [12], "bits": 1, "quant": "thresholds",
                                    "raw_bits": 8, "channels": 1}  # fmt: skip
    raw = rng.integers(0, 256, (30, 12))
    assert np.array_equal(golden.scores(back, raw), golden.scores(net, raw))


def test_identity_bundles_keep_their_version_and_meta(tmp_path: Path) -> None:
    from hwqnn.randnet import random_bundle

    b = random_bundle(0, 20, (8,), 3)
    with np.load(B.save(b, tmp_path / "v1.npz"), allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        assert sorted(z.files) == ["layer0.flip", "layer0.thresholds", "layer0.weights",
                                   "layer1.weights", "meta"]  # fmt: skip
    assert meta["version"] == 1 and meta["input"] == {"shape": [20], "bits": 8}


def _rewrite(src: Path, dst: Path, change: dict) -> Path:
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"]))
    for key, value in change.items():
        if key.startswith("meta."):
            obj = meta
            *path, last = key[5:].split(".")
            for p in path:
                obj = obj[p]
            if value is None:
                del obj[last]
            else:
                obj[last] = value
        elif value is None:
            del arrays[key]
        else:
            arrays[key] = value
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(dst, **arrays)
    return dst


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"input.thresholds": None}, "field 'input.thresholds': expected an array of shape"),
        ({"meta.input.channels": 2}, "field 'meta.input.channels': expected 1, 3, found 2"),
        ({"meta.input.raw_bits": 9}, "field 'meta.input.raw_bits': expected 1..8, found 9"),
        ({"meta.input.quant": "log"}, "field 'meta.input.quant': expected one of thresholds"),
        ({"meta.version": 2}, "field 'meta.input.quant': expected no quant key in a version-2"),
        ({"input.thresholds": np.array([[3, 2, 1]] * 3)},
         "field 'input.thresholds': expected ascending per channel"),
        ({"input.thresholds": np.array([[1, 2, 257]] * 3)},
         "field 'input.thresholds': expected values in 0..256, found outside"),
        ({"meta.input.quant": None}, "field 'meta.input.raw_bits': expected no such key without"),
    ],
)  # fmt: skip
def test_bad_input_quantization_is_refused_by_name(
    tmp_path: Path, change: dict, message: str
) -> None:
    rng = RNG(7)
    net = build_bundle(
        [conv2d(_levels(rng, (2, 1, 1, 3), 1), [[0], [1]]), dense(_levels(rng, (2, 8), 1))],
        input_shape=(2, 2, 3), input_bits=2, input_thresholds=[[1, 2, 3]] * 3,
    )  # fmt: skip
    good = B.save(net, tmp_path / "good.npz")
    bad = _rewrite(good, tmp_path / "bad.npz", change)
    with pytest.raises(B.BundleError, match="bad.npz: " + message.replace("(", r"\(")):
        B.load(bad)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"layers": [dense([[1, 0, 1]])]}, "field 'layer0.weights': expected ±1, found"),
        ({"layers": [dense([[1, -1, 1]], thresholds=[0]), maxpool2d(2)]},
         "field 'layer1.kind': expected an image-shaped input"),
        ({"layers": [dense([[1, 1, 1]], thresholds=[0]), dense([[1]])], "input_shape": (4,)},
         r"field 'meta.input.shape': expected 3 inputs as layer 0 reads them \(\[3\]\)"),
        ({"layers": [dense([[1, -1, 1]], thresholds=[0])]},
         "field 'layer0.thresholds': expected nothing \\(the last layer"),
        ({"layers": [dense([[1, -1, 1]]), dense([[1]])]},
         "field 'layer0.thresholds': expected an array"),
        ({"layers": [conv2d(np.ones((1, 3, 3, 2)))], "input_shape": (4, 4)},
         "field 'layer0.weights': expected \\[out, k, k, 1\\]"),
        ({"layers": [dense([[1, -1, 1]])], "input_thresholds": [[1, 2]], "input_bits": 1},
         "field 'input.thresholds': expected 1 thresholds per channel"),
    ],
)  # fmt: skip
def test_builder_refuses_bad_arrays_by_field(kwargs: dict, message: str) -> None:
    args = {"input_shape": (3,), **kwargs}
    with pytest.raises(B.BundleError, match="<arrays>: " + message):
        build_bundle(**args)


def test_readme_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's fromarrays example, as printed there, writes a bundle that loads back."""
    text = (Path(__file__).parents[1] / "README.md").read_text()
    block = text.split("<!-- example: fromarrays")[1].split("```python\n")[1].split("```")[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {})
    b = B.load(tmp_path / "byo.npz")
    assert b.version == 3 and b.arch().startswith("784(8b>1b)-")

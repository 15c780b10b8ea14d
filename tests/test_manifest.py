"""The manifest: written once by the generator, read back typed and checked field by field; its
ports are the one codec of the stream format (the driver header and the benches use them)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hwqnn.cli import main
from hwqnn.hw.emit import generate, generate_layer
from hwqnn.hw.folding import choose_folding
from hwqnn.hw.layerfold import LayerFold
from hwqnn.hw.manifest import (
    LayerManifest,
    Manifest,
    ManifestError,
    from_ints,
    load,
    load_network,
    to_ints,
)
from hwqnn.hw.plan import plan
from hwqnn.randnet import random_bundle


@pytest.fixture(scope="module")
def rtl(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    b = random_bundle(3, 50, (24,), 5)
    return generate(plan(b, choose_folding(b, 30, 16), 16), tmp_path_factory.mktemp("rtl"))


def test_load_gives_back_what_generate_wrote(rtl: Manifest) -> None:
    back = load(rtl.dir)
    assert back == rtl and isinstance(back, Manifest)
    text = (rtl.dir / "manifest.json").read_text()
    assert json.loads(text) == rtl.to_json()
    assert rtl.ports.in_chunk == 2 and rtl.ports.in_beats == 25  # 16-bit beats of 8-bit pixels


def test_a_layer_manifest_is_told_apart(tmp_path: Path) -> None:
    b = random_bundle(4, 40, (12,), 3)
    man = generate_layer(b.layers[0], LayerFold(3, 8), 5, tmp_path)  # type: ignore[arg-type]
    back = load(tmp_path)
    assert isinstance(back, LayerManifest) and back == man
    with pytest.raises(ManifestError, match=r"field 'top': expected the network top"):
        load_network(tmp_path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("ports"), r"field 'ports': expected a value, found nothing"),
        (
            lambda d: d["ports"].update(in_chunk="2"),
            r"field 'ports\.in_chunk': expected an integer",
        ),
        (lambda d: d["ports"].update(classes=-1), r"field 'ports\.classes': expected 0\.\."),
        (lambda d: d["ports"].update(extra=1), r"field 'ports\.extra': expected no such key"),
        (lambda d: d.update(top=""), r"field 'top': expected a non-empty string"),
        (lambda d: d.update(folding="1x1"), r"field 'folding': expected a list of PExSIMD"),
        (lambda d: d["layers"][0].pop("cols"), r"field 'layers\[0\]\.cols': expected a value"),
        (lambda d: d["pipeline"].update(latency_cycles=1.5), r"'pipeline\.latency_cycles'"),
        (lambda d: d.update(verilog="gone.v"), r"gone\.v: the Verilog named by the manifest"),
    ],
)
def test_a_bad_manifest_is_one_line_naming_the_field(
    rtl: Manifest, tmp_path: Path, edit: object, message: str
) -> None:
    d = rtl.to_json()
    edit(d)  # type: ignore[operator]
    (tmp_path / "manifest.json").write_text(json.dumps(d))
    (tmp_path / "hwqnn_top.v").write_text("module hwqnn_top; endmodule\n")
    with pytest.raises(ManifestError, match=message) as e:
        load(tmp_path)
    assert "\n" not in str(e.value) and str(e.value).startswith(str(tmp_path))


def test_the_cli_refuses_a_bad_manifest_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "manifest.json").write_text('{"top": 3}')
    assert main(["synth", str(tmp_path), "-o", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "manifest.json: field" in err


def test_ports_pack_and_unpack_are_inverse_to_the_bit_layout(rtl: Manifest) -> None:
    p = rtl.ports
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, size=(3, 50))
    beats = p.pack(raw)
    assert beats.shape == (3 * p.in_beats, p.s_words)
    ints = to_ints(beats)
    for j in (0, 1, 2, 49):  # value j at beat j // chunk, bits 8 * (j % chunk)
        b, pos = divmod(j, p.in_chunk)
        assert (ints[b] >> (8 * pos)) & 0xFF == raw[0, j]
    np.testing.assert_array_equal(from_ints(ints, p.s_tdata_bits), beats)
    # an output beat: scores at k * width, two's complement, then the class above them
    scores = rng.integers(-(2 ** (p.score_width - 1)), 2 ** (p.score_width - 1), (4, p.classes))
    cls = rng.integers(0, p.classes, 4)
    words = [
        sum((int(s) % (1 << p.score_width)) << (k * p.score_width) for k, s in enumerate(row))
        | int(c) << (p.classes * p.score_width)
        for row, c in zip(scores, cls, strict=True)
    ]
    got_scores, got_cls = p.unpack(from_ints(words, p.m_tdata_bits))
    np.testing.assert_array_equal(got_scores, scores)
    np.testing.assert_array_equal(got_cls, cls)


@pytest.mark.parametrize(("classes", "sw", "cb"), [(4, 9, 2), (10, 12, 4), (2, 3, 1)])
def test_ports_read_the_result_beat_at_the_collectors_layout(
    classes: int, sw: int, cb: int
) -> None:
    """The m_axis beat is the collector's StructLayout; Ports (and the driver header rendered
    from them) unpack it at the layout's offsets."""
    from hwqnn.hw.collector import result_layout
    from hwqnn.hw.manifest import Ports

    lay = result_layout(classes, sw, cb)
    assert lay["scores"].offset == 0 and lay["cls"].offset == classes * sw
    ports = Ports(8, 1, 1, 8, classes, sw, cb, 8 * -(-lay.size // 8), 1)
    rng = np.random.default_rng(classes)
    scores = rng.integers(-(2 ** (sw - 1)), 2 ** (sw - 1), size=(5, classes))
    cls = rng.integers(0, classes, 5)
    words = [
        int(lay.const({"scores": list(map(int, row)), "cls": int(c)}).as_value().value)
        for row, c in zip(scores, cls, strict=True)
    ]
    got_scores, got_cls = ports.unpack(from_ints(words, ports.m_tdata_bits))
    np.testing.assert_array_equal(got_scores, scores)
    np.testing.assert_array_equal(got_cls, cls)

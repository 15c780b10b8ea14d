"""The manifest: the contract between the generator and everything that drives the generated
Verilog (the simulators, synthesis, the host driver, a user's own tools). ``hwqnn rtl`` writes it
as ``manifest.json`` next to the Verilog; :func:`load` reads it back, checked field by field.

It owns the **stream format**: :class:`Ports` (the network top ``hwqnn_top``) and
:class:`LayerPorts` (one MVTU alone, ``hwqnn_layer``, for unit benches) pack input values into
beats and unpack output beats, and the generated C header ``hwqnn_driver.h``
(:mod:`hwqnn.hw.driver`) is rendered from the same :class:`Ports`. One codec serves both:

* input: value ``j`` of a frame goes to beat ``j // chunk`` at bits ``bits * (j % chunk)``
  (``bits`` wide), beats of ``tdata_bits``; values past the frame's end are 0;
* output: field ``i`` of a beat at bits ``offset + width * i`` (two's complement when signed);
  the network's beat is the collector's payload (:data:`hwqnn.hw.collector.Collector.layout`):
  class scores, then the argmax class.

Beats in memory (NumPy, the C++ harness, the C header) are arrays of little-endian 32-bit words,
least significant word first.

An RTL directory is shared between people, so the manifest is a trust boundary: a module name is
an identifier (:data:`MODULE_NAME`), a file it names is a plain name inside the directory
(:data:`FILE_NAME`; no separator, no ``..``, no absolute path, not a link out of it), the file
is at most :data:`MAX_MANIFEST_BYTES`, and every count is bounded. Tool scripts (Yosys's) are
built from these checked values only.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from hwqnn.errors import InputError, shown
from hwqnn.layers._meta import Fail, int_field, keys, refuse

MANIFEST_NAME = "manifest.json"
DEFAULT_AXIS_BITS = 64  # s_axis_tdata bits unless the user chooses (a DMA's width)
COUNT = range(0, 1 << 62)  # any width or count in a manifest
MAX_MANIFEST_BYTES = 1 << 24
MAX_ROWS = 4096  # layers and folding entries
MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


class ManifestError(InputError):
    """A manifest that is missing, unreadable or not what ``hwqnn rtl`` writes."""


def words(bits: int) -> int:
    """32-bit words of a ``bits``-wide beat."""
    return max(1, -(-bits // 32))


def pack_beats(
    values: np.ndarray, chunk: int, bits: int, beats: int, tdata_bits: int
) -> np.ndarray:
    """Frames of values ``[N, K]`` (``K <= beats * chunk``) -> beats ``uint32[N * beats,
    words(tdata_bits)]``: value ``j`` at beat ``j // chunk``, bits ``bits * (j % chunk)``."""
    values = np.asarray(values)
    n, k = values.shape
    padded = np.zeros((n, beats * chunk), dtype=np.uint64)
    padded[:, :k] = values
    planes = (padded[..., None] >> np.arange(bits, dtype=np.uint64)) & np.uint64(1)
    flat = planes.reshape(n * beats, chunk * bits).astype(np.uint8)
    full = np.zeros((n * beats, words(tdata_bits) * 32), dtype=np.uint8)
    full[:, : chunk * bits] = flat
    return np.packbits(full, axis=1, bitorder="little").view("<u4")


def unpack_fields(
    beats: np.ndarray, width: int, count: int, signed: bool, offset: int = 0
) -> np.ndarray:
    """Beats ``uint32[M, words]`` -> ``int64[M, count]``: field ``i`` at bits ``offset + width *
    i``, two's complement when ``signed``."""
    bits = np.unpackbits(np.ascontiguousarray(beats).view(np.uint8), axis=1, bitorder="little")
    f = bits[:, offset : offset + width * count].reshape(len(beats), count, width).astype(np.int64)
    vals = (f << np.arange(width, dtype=np.int64)).sum(axis=2)
    if signed:
        vals = np.where(vals >> (width - 1), vals - (1 << width), vals)
    return vals


def to_ints(beats: np.ndarray) -> list[int]:
    """Beats ``uint32[M, words]`` as Python integers (a simulator's ``tdata`` values)."""
    return [int.from_bytes(row.astype("<u4").tobytes(), "little") for row in beats]


def from_ints(values: list[int], tdata_bits: int) -> np.ndarray:
    """Python integers (``tdata`` values) as beats ``uint32[M, words(tdata_bits)]``."""
    n = words(tdata_bits)
    raw = b"".join(int(v).to_bytes(4 * n, "little") for v in values)
    return np.frombuffer(raw, dtype="<u4").reshape(len(values), n).copy()


def _ints(
    cls: type, d: object, where: str, fail: Fail, optional: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """The integer fields of dataclass ``cls`` from the JSON object ``d``, each checked."""
    names = {f.name for f in fields(cls)}
    m = keys(d, where, names, fail, optional=set(optional))
    out: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in m:
            continue
        v = m[f.name]
        if f.type in ("bool", bool):
            if type(v) is not bool:
                fail(f"{where}.{f.name}", "true or false", f"{v!r}"[:60])
            out[f.name] = v
        else:
            out[f.name] = int_field(v, f"{where}.{f.name}", fail, COUNT)
    return out


@dataclass(frozen=True)
class Ports:
    """The network top's ports and stream format (``ports`` in the manifest): ``s_axis`` beats of
    ``s_tdata_bits`` carry ``in_chunk`` raw values of ``in_bits``, ``in_beats`` beats a frame;
    one ``m_axis`` beat of ``m_tdata_bits`` per frame holds ``classes`` signed scores of
    ``score_width`` bits, then the class (``class_bits``); ``perf_layers`` counter pairs."""

    axis_bits: int
    in_chunk: int
    in_beats: int
    s_tdata_bits: int
    classes: int
    score_width: int
    class_bits: int
    m_tdata_bits: int
    perf_layers: int
    in_bits: int = 8  # bits of one raw input value (8 for pixels)

    @property
    def s_words(self) -> int:
        return words(self.s_tdata_bits)

    @property
    def m_words(self) -> int:
        return words(self.m_tdata_bits)

    def pack(self, raw: np.ndarray) -> np.ndarray:
        """Raw frames ``[N, K]`` -> ``s_axis`` beats ``uint32[N * in_beats, s_words]``."""
        return pack_beats(raw, self.in_chunk, self.in_bits, self.in_beats, self.s_tdata_bits)

    def unpack(self, beats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``m_axis`` beats ``uint32[N, m_words]`` -> (scores ``[N, classes]``, class ``[N]``)."""
        c, sw = self.classes, self.score_width
        scores = unpack_fields(beats, sw, c, signed=True)
        cls = unpack_fields(beats, self.class_bits, 1, signed=False, offset=c * sw)[:, 0]
        return scores, cls

    @classmethod
    def from_json(cls, d: object, where: str, fail: Fail) -> Ports:
        return cls(**_ints(cls, d, where, fail, optional=frozenset({"in_bits"})))


@dataclass(frozen=True)
class LayerPorts:
    """One MVTU's ports (``hwqnn_layer``): beats of ``in_chunk`` codes of ``in_bits``,
    ``in_beats`` a vector; ``nf`` output beats a vector of ``pe`` fields of ``out_width``."""

    in_chunk: int
    in_beats: int
    in_bits: int
    pe: int
    nf: int
    out_width: int
    signed: bool

    @property
    def s_tdata_bits(self) -> int:
        return 8 * -(-self.in_chunk * self.in_bits // 8)

    @property
    def m_tdata_bits(self) -> int:
        return 8 * -(-self.pe * self.out_width // 8)

    def pack(self, codes: np.ndarray) -> np.ndarray:
        """Vectors ``[N, cols]`` -> beats ``uint32[N * in_beats, words]``."""
        return pack_beats(codes, self.in_chunk, self.in_bits, self.in_beats, self.s_tdata_bits)

    def unpack(self, beats: np.ndarray, rows: int) -> np.ndarray:
        """Output beats ``uint32[N * nf, words]`` -> ``int64[N, rows]`` (pad neurons dropped)."""
        got = unpack_fields(beats, self.out_width, self.pe, self.signed)
        return got.reshape(-1, self.nf * self.pe)[:, :rows]

    @classmethod
    def from_json(cls, d: object, where: str, fail: Fail) -> LayerPorts:
        return cls(**_ints(cls, d, where, fail))


@dataclass(frozen=True)
class WindowEntry:
    """A window unit's geometry in a manifest row: ``kernel x kernel`` by ``stride`` over an
    ``in_shape`` (H, W, C) image padded by ``padding``."""

    in_shape: tuple[int, int, int]
    kernel: int
    stride: int
    padding: int


def _plain(v: object) -> object:
    """A manifest row's field as JSON: a record (a dataclass) as an object, a tuple as a list."""
    if is_dataclass(v) and not isinstance(v, type):
        return {f.name: _plain(getattr(v, f.name)) for f in fields(v)}
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    return v


@dataclass(frozen=True)
class LayerEntry:
    """One stage's row in the manifest (:meth:`hwqnn.hw.stages.Stage.entry`): its kind, cycles
    per frame, code widths, folding and matrix shape (0 for a kind without weights); ``nf``,
    ``sf`` and ``latency`` for a kind with an MVTU, ``window`` for a kind with a window unit."""

    kind: str
    cycles_per_frame: int
    in_bits: int
    out_bits: int
    pe: int
    simd: int
    rows: int
    cols: int
    vectors: int
    w_bits: int
    weight_bits: int
    nf: int | None = None
    sf: int | None = None
    latency: int | None = None
    window: WindowEntry | None = None

    @property
    def macs(self) -> int:
        """Multiply-accumulates per frame: one per weight per input vector."""
        return self.rows * self.cols * self.vectors

    def to_json(self) -> dict[str, object]:
        """The row's fields that are set, a nested record as an object, a tuple as a list."""
        return {f.name: _plain(v) for f in fields(self) if (v := getattr(self, f.name)) is not None}

    @classmethod
    def from_json(cls, d: object, where: str, fail: Fail) -> LayerEntry:
        names = {f.name for f in fields(cls)}
        optional = frozenset({"nf", "sf", "latency", "window"})
        m = keys(d, where, names, fail, optional=set(optional))
        if not isinstance(m["kind"], str) or not m["kind"]:
            fail(f"{where}.kind", "a layer kind", f"{m['kind']!r}"[:60])
        ints: dict[str, int] = {}
        for f in fields(cls):
            v = m.get(f.name)
            if f.name in ("kind", "window") or (f.name in optional and v is None):
                continue
            ints[f.name] = int_field(v, f"{where}.{f.name}", fail, COUNT)
        window = None
        if m.get("window") is not None:
            w = keys(m["window"], f"{where}.window", {"in_shape", "kernel", "stride", "padding"},
                     fail, set())  # fmt: skip
            shape = w["in_shape"]
            if not isinstance(shape, list) or len(shape) != 3:
                fail(f"{where}.window.in_shape", "[height, width, channels]", f"{shape!r}"[:60])
            window = WindowEntry(
                tuple(int_field(v, f"{where}.window.in_shape", fail, range(1, COUNT.stop))
                      for v in shape),  # type: ignore[arg-type]
                *(int_field(w[k], f"{where}.window.{k}", fail, COUNT)
                  for k in ("kernel", "stride", "padding")),
            )  # fmt: skip
        return cls(kind=m["kind"], window=window, **ints)


@dataclass(frozen=True)
class Pipeline:
    """Predicted timing of the whole design (``pipeline`` in the manifest)."""

    cycles_per_frame: int
    slowest_layer: int
    latency_cycles: int | None  # None: not modelled (window units in the pipeline)
    input_beats_per_frame: int


@dataclass(frozen=True)
class Manifest:
    """What ``hwqnn rtl`` wrote into ``dir``: the network top, its ports, its layers (one row per
    stage, :meth:`hwqnn.hw.stages.Stage.entry`) and the predicted timing."""

    generator: str
    top: str
    verilog: str
    bundle_digest: str
    arch: str
    folding: tuple[str, ...]
    ports: Ports
    driver: str
    estimated_luts: int
    layers: tuple[LayerEntry, ...]
    pipeline: Pipeline
    dir: Path = field(default=Path("."), compare=False)

    STRINGS: ClassVar[tuple[str, ...]] = ("generator", "top", "verilog", "bundle_digest", "arch",
                                          "driver")  # fmt: skip

    @property
    def verilog_path(self) -> Path:
        return self.dir / self.verilog

    @property
    def driver_path(self) -> Path:
        return self.dir / self.driver

    def to_json(self) -> dict[str, object]:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "dir"}
        d["folding"] = list(self.folding)
        d["ports"] = asdict(self.ports)
        d["layers"] = [ly.to_json() for ly in self.layers]
        d["pipeline"] = asdict(self.pipeline)
        return d

    def write(self) -> None:
        write_if_changed(self.dir / MANIFEST_NAME, _text(self.to_json()))

    @classmethod
    def from_json(cls, d: object, where: str, rtl_dir: Path) -> Manifest:
        fail = refuse(where, ManifestError)
        names = {f.name for f in fields(cls)} - {"dir"}
        m = keys(d, "", names, fail, optional=set())
        strings = {s: _string(m[s], s, fail) for s in cls.STRINGS}
        _module(strings["top"], "top", fail)
        _file(strings["verilog"], "verilog", (".v", ".sv"), fail)
        _file(strings["driver"], "driver", (".h",), fail)
        folding, rows = m["folding"], m["layers"]
        if not isinstance(folding, list) or not all(isinstance(f, str) for f in folding):
            fail("folding", "a list of PExSIMD strings", f"{folding!r}"[:60])
        if not isinstance(rows, list):
            fail("layers", "a list of JSON objects", f"{rows!r}"[:60])
        for name, entries in (("folding", folding), ("layers", rows)):
            if len(entries) > MAX_ROWS:
                fail(name, f"at most {MAX_ROWS} entries", len(entries))
        layers = tuple(LayerEntry.from_json(ly, f"layers[{i}]", fail) for i, ly in enumerate(rows))
        pm = keys(m["pipeline"], "pipeline", {f.name for f in fields(Pipeline)}, fail, set())
        lat = pm["latency_cycles"]
        any_int = COUNT
        pipeline = Pipeline(
            int_field(pm["cycles_per_frame"], "pipeline.cycles_per_frame", fail, any_int),
            int_field(pm["slowest_layer"], "pipeline.slowest_layer", fail, any_int),
            None if lat is None else int_field(lat, "pipeline.latency_cycles", fail, any_int),
            int_field(pm["input_beats_per_frame"], "pipeline.input_beats_per_frame", fail,
                      any_int),
        )  # fmt: skip
        return cls(
            **strings,
            folding=tuple(folding),
            ports=Ports.from_json(m["ports"], "ports", fail),
            estimated_luts=int_field(m["estimated_luts"], "estimated_luts", fail, any_int),
            layers=layers,
            pipeline=pipeline,
            dir=rtl_dir,
        )


@dataclass(frozen=True)
class LayerManifest:
    """What :func:`hwqnn.hw.emit.generate_layer` wrote: one MVTU alone, for unit benches."""

    top: str
    verilog: str
    ports: LayerPorts
    cycles_per_frame: int
    latency: int
    dir: Path = field(default=Path("."), compare=False)

    @property
    def verilog_path(self) -> Path:
        return self.dir / self.verilog

    def to_json(self) -> dict[str, object]:
        return {"top": self.top, "verilog": self.verilog, "ports": asdict(self.ports),
                "cycles_per_frame": self.cycles_per_frame, "latency": self.latency}  # fmt: skip

    def write(self) -> None:
        write_if_changed(self.dir / MANIFEST_NAME, _text(self.to_json()))

    @classmethod
    def from_json(cls, d: object, where: str, rtl_dir: Path) -> LayerManifest:
        fail = refuse(where, ManifestError)
        m = keys(d, "", {"top", "verilog", "ports", "cycles_per_frame", "latency"}, fail, set())
        any_int = COUNT
        return cls(
            _module(_string(m["top"], "top", fail), "top", fail),
            _file(_string(m["verilog"], "verilog", fail), "verilog", (".v", ".sv"), fail),
            LayerPorts.from_json(m["ports"], "ports", fail),
            int_field(m["cycles_per_frame"], "cycles_per_frame", fail, any_int),
            int_field(m["latency"], "latency", fail, any_int), dir=rtl_dir,
        )  # fmt: skip


def load(rtl_dir: Path) -> Manifest | LayerManifest:
    """The manifest in ``rtl_dir``, checked (a network top's or a single layer's, told apart by
    its ``top``); a :class:`ManifestError` names the file and the field."""
    path = Path(rtl_dir) / MANIFEST_NAME
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise ManifestError(f"{path}: larger than {MAX_MANIFEST_BYTES} bytes: not a manifest")
        d = json.loads(path.read_text())
    except FileNotFoundError as e:
        raise ManifestError(f"{path}: no manifest (generate the RTL with 'hwqnn rtl' first)") from e
    except (OSError, ValueError) as e:  # bad UTF-8, bad JSON, an integer of 5,000 digits
        raise ManifestError(f"{path}: not a readable manifest ({shown(e)})") from e
    except RecursionError as e:
        raise ManifestError(f"{path}: not a readable manifest (nested too deeply)") from e
    kind = LayerManifest if isinstance(d, dict) and d.get("top") == "hwqnn_layer" else Manifest
    man = kind.from_json(d, str(path), Path(rtl_dir))
    inside(Path(rtl_dir), man.verilog, f"{path}: field 'verilog'")
    if not man.verilog_path.is_file():
        raise ManifestError(f"{man.verilog_path}: the Verilog named by the manifest is missing")
    return man


def inside(rtl_dir: Path, name: str, what: str) -> Path:
    """``rtl_dir / name``, refused unless it resolves inside ``rtl_dir`` (a link out of the
    directory is refused like a path)."""
    base = rtl_dir.resolve()
    target = (base / name).resolve()
    if not target.is_relative_to(base):
        raise ManifestError(f"{what}: expected a file inside {rtl_dir}, found a link out of it")
    return target


def load_network(rtl_dir: Path) -> Manifest:
    """:func:`load`, for a network top only."""
    man = load(rtl_dir)
    if not isinstance(man, Manifest):
        raise ManifestError(f"{Path(rtl_dir) / MANIFEST_NAME}: field 'top': expected the "
                            f"network top, found {man.top!r}")  # fmt: skip
    return man


def _string(v: object, fld: str, fail: Fail) -> str:
    """``v`` if it is a non-empty JSON string."""
    if not isinstance(v, str) or not v:
        fail(fld, "a non-empty string", f"{v!r}"[:60])
    assert isinstance(v, str)
    return v


def _module(v: str, fld: str, fail: Fail) -> str:
    """``v`` if it is a Verilog module name (an identifier, at most 128 characters)."""
    if not MODULE_NAME.fullmatch(v):
        fail(fld, "a module name (letters, digits, _)", repr(v)[:60])
    return v


def _file(v: str, fld: str, suffixes: tuple[str, ...], fail: Fail) -> str:
    """``v`` if it is a plain file name (no separator, no leading dot) ending in ``suffixes``."""
    if not FILE_NAME.fullmatch(v) or not v.endswith(suffixes):
        fail(fld, f"a file name in the RTL directory ending in {' or '.join(suffixes)}",
             repr(v)[:60])  # fmt: skip
    return v


def _text(d: dict[str, object]) -> str:
    return json.dumps(d, indent=2, sort_keys=True) + "\n"


def write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` atomically, unless it already holds it (keeps rebuilds
    cheap)."""
    import os

    if path.is_file() and path.read_text() == text:
        return False
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return True

"""The C library (``sw/``) from Python, through ctypes: the fifth implementation of a bundle.

:func:`library` finds ``libhwqnn``. In a source checkout it is built from ``sw/`` with the C
compiler (``$CC``, else ``cc``) into ``build/sw/``, named by a hash of the sources, so an edited
source is never run stale and an unchanged one is compiled once. Outside a checkout it is the copy
that the package's install built (``hwqnn/_libhwqnn*.so``, from ``setup.py``).

:class:`CNet` runs a bundle: ``scores``, ``classify`` and ``forward_layer`` (per-layer
accumulators and outputs, for naming the first mismatch). Results are integers, equal to the
golden model's.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType

import numpy as np

from hwqnn import flat, procs
from hwqnn.bundle import Bundle, BundleError
from hwqnn.errors import HwqnnError, InputError

SW_DIR = Path(__file__).resolve().parent.parent / "sw"
# the library's sources (every .c is compiled) and the headers they read: all hashed
SOURCES = (*sorted(str(p.relative_to(SW_DIR)) for p in (SW_DIR / "src").glob("*.[ch]")),
           "include/hwqnn.h")  # fmt: skip
CFLAGS = ("-O3", "-std=c99", "-fPIC", "-shared", "-pthread")
ISAS = ("avx512", "avx2", "popcnt", "neon", "portable")
PEAK_SOURCE = "bench/peak.c"

_lib: ctypes.CDLL | None = None


def _build(sources: tuple[str, ...], name: str, flags: tuple[str, ...]) -> Path:
    """``sources`` (under ``sw/``; the ``.c`` files are compiled, every file is hashed) built
    with ``flags`` into ``build/sw/NAME-HASH[.so]``, the hash of the sources and flags: built
    once, never stale."""
    h = hashlib.sha256()
    for s in sources:
        h.update((SW_DIR / s).read_bytes())
    h.update(" ".join(flags).encode())
    out_dir = Path(os.environ.get("HWQNN_SW_BUILD", SW_DIR.parent / "build" / "sw"))
    suffix = ".so" if "-shared" in flags else ""
    out = out_dir / f"{name}-{h.hexdigest()[:16]}{suffix}"
    if out.exists():
        return out
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        raise HwqnnError(f"no C compiler '{cc}' on PATH: the C library in {SW_DIR} needs one")
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=suffix, dir=out_dir)
    os.close(fd)
    units = [str(SW_DIR / s) for s in sources if s.endswith(".c")]
    cmd = [cc, *flags, "-I", str(SW_DIR / "include"), *units, "-o", tmp]
    try:
        res = procs.run(cmd, capture_output=True, text=True)
        if res.returncode:
            raise HwqnnError(f"building {', '.join(units)} failed: {res.stderr.strip()}")
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return out


def _build_from_source() -> Path:
    return _build(SOURCES, "libhwqnn", CFLAGS)


def peak_gmacs(seconds: float = 0.3) -> dict[str, float]:
    """This core's XOR+POPCNT peak per kernel family, G binary MACs a second (``sw/bench/
    peak.c``: a bare loop over operands in L1); empty outside a source checkout."""
    if not (SW_DIR / PEAK_SOURCE).exists():
        return {}
    exe = _build((PEAK_SOURCE,), "peak", ("-O3", "-std=c99"))
    res = procs.run([str(exe), str(seconds)], capture_output=True, text=True)
    if res.returncode:
        raise HwqnnError(f"{exe} failed with code {res.returncode}: {res.stderr.strip()}")
    return {name: float(v) for name, v in (line.split() for line in res.stdout.splitlines())}


def library_path() -> Path:
    """Where ``libhwqnn`` is (building it from ``sw/`` in a source checkout)."""
    if (SW_DIR / SOURCES[0]).exists():
        return _build_from_source()
    built = sorted(Path(__file__).resolve().parent.glob("_libhwqnn*.so"))
    if not built:
        raise HwqnnError(
            "the C library was not built with this install (no compiler at install time?): "
            "reinstall hwqnn with a C compiler on PATH"
        )
    return built[0]


def library() -> ctypes.CDLL:
    """The loaded library, with its functions' types declared."""
    global _lib
    if _lib is not None:
        return _lib
    lib = ctypes.CDLL(str(library_path()))
    P, S, Int = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int
    sigs: dict[str, tuple[list[object], object]] = {
        "hwqnn_open_memory": ([P, S, ctypes.c_char_p, ctypes.POINTER(P), P, S], Int),
        "hwqnn_close": ([P], None),
        "hwqnn_num_layers": ([P], Int),
        "hwqnn_in_features": ([P], Int),
        "hwqnn_in_bits": ([P], Int),
        "hwqnn_raw_bits": ([P], Int),
        "hwqnn_num_classes": ([P], Int),
        "hwqnn_out_features": ([P, Int], Int),
        "hwqnn_infer": ([P, P, S, P, Int], Int),
        "hwqnn_classify": ([P, P, S, P, Int], Int),
        "hwqnn_forward_layer": ([P, Int, P, S, P, P], Int),
        "hwqnn_quantize_input": ([P, P, S, P], Int),
        "hwqnn_isa": ([], ctypes.c_char_p),
        "hwqnn_set_isa": ([ctypes.c_char_p], Int),
    }
    for name, (args, res) in sigs.items():
        fn = getattr(lib, name)
        fn.argtypes = args
        fn.restype = res
    _lib = lib
    return lib


def isa() -> str:
    """The kernel family the library runs: ``avx512``, ``avx2``, ``popcnt``, ``neon`` (aarch64),
    ``portable``."""
    return str(library().hwqnn_isa().decode())


def set_isa(name: str | None) -> None:
    """Choose the kernel by name (``None``: the best this CPU has). ValueError if unsupported."""
    if library().hwqnn_set_isa(None if name is None else name.encode()) != 0:
        raise InputError(f"kernel {name!r} is not available on this CPU (have: {available()})")


def available() -> list[str]:
    """The kernels this CPU and build can run."""
    cur = isa()
    ok = [n for n in ISAS if library().hwqnn_set_isa(n.encode()) == 0]
    library().hwqnn_set_isa(cur.encode())
    return ok


def _ptr(a: np.ndarray) -> int:
    return int(a.ctypes.data)


class CNet:
    """A bundle loaded into the C library. Use as a context manager, or call :meth:`close`."""

    def __init__(self, bundle: Bundle, name: str = "<bundle>") -> None:
        self._open(flat.to_bytes(bundle), name)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> CNet:
        """Load a flat file (as ``hwqnn flat`` writes it) through the C loader's checks."""
        self = cls.__new__(cls)
        self._open(Path(path).read_bytes(), str(path))
        return self

    def _open(self, data: bytes, name: str) -> None:
        self._h: int | None = None
        self._lib = library()
        err = ctypes.create_string_buffer(512)
        handle = ctypes.c_void_p()
        rc = self._lib.hwqnn_open_memory(
            data, len(data), name.encode(), ctypes.byref(handle), err, len(err)
        )
        if rc != 0:
            raise BundleError(err.value.decode(errors="replace"))
        self._h = handle.value
        self.in_features = int(self._lib.hwqnn_in_features(self._h))
        self.in_bits = int(self._lib.hwqnn_in_bits(self._h))
        self.raw_bits = int(self._lib.hwqnn_raw_bits(self._h))
        self.num_classes = int(self._lib.hwqnn_num_classes(self._h))
        self.num_layers = int(self._lib.hwqnn_num_layers(self._h))

    def close(self) -> None:
        if self._h is not None:
            self._lib.hwqnn_close(self._h)
            self._h = None

    def __enter__(self) -> CNet:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_h", None) is not None:
            self.close()

    def _handle(self) -> int:
        if self._h is None:
            raise InputError("this CNet is closed")
        return self._h

    def _images(self, images: np.ndarray, width: int, bits: int) -> np.ndarray:
        x = np.asarray(images)
        if x.ndim != 2 or x.shape[1] != width:
            raise InputError(f"input must have shape [N, {width}], not {x.shape}")
        if x.size and (x.min() < 0 or x.max() >= 2**bits):
            raise InputError(f"input values must lie in 0..{2**bits - 1}")
        return np.ascontiguousarray(x, dtype=np.uint8)

    def scores(self, images: np.ndarray, threads: int = 0) -> np.ndarray:
        """Integer class scores int64 ``[N, classes]`` of raw images ``[N, in_features]`` (8-bit
        pixels; the net's input quantization applied); ``threads`` 0: one per CPU."""
        x = self._images(images, self.in_features, self.raw_bits)
        out = np.empty((x.shape[0], self.num_classes), dtype=np.int32)
        rc = self._lib.hwqnn_infer(self._handle(), _ptr(x), x.shape[0], _ptr(out), threads)
        if rc != 0:
            raise HwqnnError(f"hwqnn_infer failed with code {rc}")
        return out.astype(np.int64)

    def scores_into(self, x: np.ndarray, out: np.ndarray, threads: int = 0) -> None:
        """:meth:`scores` without checks or copies, for benchmarks: ``x`` uint8 C-contiguous
        ``[N, in_features]``, ``out`` int32 ``[N, classes]``."""
        self._lib.hwqnn_infer(self._handle(), _ptr(x), x.shape[0], _ptr(out), threads)

    def classify(self, images: np.ndarray, threads: int = 0) -> np.ndarray:
        """Predicted classes int64 ``[N]`` (lowest index of the maximum score)."""
        x = self._images(images, self.in_features, self.raw_bits)
        out = np.empty(x.shape[0], dtype=np.int32)
        rc = self._lib.hwqnn_classify(self._handle(), _ptr(x), x.shape[0], _ptr(out), threads)
        if rc != 0:
            raise HwqnnError(f"hwqnn_classify failed with code {rc}")
        return out.astype(np.int64)

    def quantize_input(self, images: np.ndarray) -> np.ndarray:
        """Layer 0's codes int64 ``[N, in_features]`` of raw images, by the C library."""
        x = self._images(images, self.in_features, self.raw_bits)
        out = np.empty_like(x)
        rc = self._lib.hwqnn_quantize_input(self._handle(), _ptr(x), x.shape[0], _ptr(out))
        if rc != 0:
            raise HwqnnError(f"hwqnn_quantize_input failed with code {rc}")
        return out.astype(np.int64)

    def trace(self, bundle: Bundle, images: np.ndarray) -> list[np.ndarray]:
        """Per-layer outputs of raw images (hidden codes..., scores) through this net, loaded
        from ``bundle``, one layer at a time (see :func:`trace`)."""
        outs: list[np.ndarray] = []
        x = self.quantize_input(images)
        for i, ly in enumerate(bundle.layers):
            _, x = self.forward_layer(i, x, ly.in_size, ly.in_bits)
            outs.append(x)
        return outs

    def forward_layer(
        self, layer: int, codes: np.ndarray, width: int, bits: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """One layer alone: ``(acc int64 [N, out], out int64 [N, out])``, ``out`` the codes of a
        hidden layer (a convolution's and a max-pool's in HWC order) or the scores of the last;
        a max-pool layer's ``acc`` is 0s (it has none)."""
        x = self._images(codes, width, bits)
        n_out = int(self._lib.hwqnn_out_features(self._handle(), layer))
        acc = np.empty((x.shape[0], n_out), dtype=np.int64)
        out = np.empty((x.shape[0], n_out), dtype=np.int32)
        rc = self._lib.hwqnn_forward_layer(
            self._handle(), layer, _ptr(x), x.shape[0], _ptr(acc), _ptr(out)
        )
        if rc != 0:
            raise HwqnnError(f"hwqnn_forward_layer failed with code {rc}")
        return acc, out.astype(np.int64)


def trace(bundle: Bundle, images: np.ndarray) -> list[np.ndarray]:
    """Per-layer outputs of the C library (hidden codes..., scores), each layer fed the C
    library's own previous output: what :func:`hwqnn.compare.first_mismatch` takes."""
    with CNet(bundle) as net:
        return net.trace(bundle, images)

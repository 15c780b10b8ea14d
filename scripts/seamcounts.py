"""The counts issue 19 tracks, by grep and by AST (run from the repository root):
kind or field-presence dispatch outside the two registries, last-layer special cases, manifest
loads, beat packers and decoders, ``dict[str, Any]``, and functions over 80 lines."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

REGISTRIES = ("hwqnn/layers/", "hwqnn/hw/stages.py")
DISPATCH = re.compile(
    r"window is (not )?None|matrix is (not )?None|\bmatrix_of\(|\bwindow_of\(|"
    r"isinstance\([^)]*\b(Layer|Conv2d|MaxPool2d|DeviceLayer|DeviceConv|DevicePool)\b|"
    r"[!=]=\s*\"(dense|conv2d|maxpool2d)\"|\bst\.matrix\b|\bst\.window\b"
)
LAST = re.compile(r"out_bits\s*==\s*0|\bis_last\b|out_bits\s*>\s*0|if not [\w.]*out_bits\b")
MANIFEST_LOAD = re.compile(r"json\.loads?\(.*(manifest|\bpath\.read_text)|manifest.*json\.loads?\(")
PACKERS = re.compile(r"^def (pack_beats|frame_beats|pack_frame|pack)\b|^    def pack\b")
DECODERS = re.compile(r"^def (unpack_fields|unpack_word|decode_outputs|unpack)\b|^    def unpack\b")


def lines(pattern: re.Pattern[str], skip: tuple[str, ...] = ()) -> list[str]:
    out = []
    for p in sorted(Path("hwqnn").rglob("*.py")):
        if str(p).startswith(skip):
            continue
        for n, line in enumerate(p.read_text().splitlines(), 1):
            if pattern.search(line):
                out.append(f"{p}:{n}: {line.strip()}")
    return out


def long_functions(limit: int = 80) -> list[str]:
    out = []
    for p in sorted(Path("hwqnn").rglob("*.py")):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > limit:
                    out.append(f"{p}:{node.lineno}: {node.name} ({n} lines)")
    return out


def main() -> int:
    verbose = "-v" in sys.argv
    rows = [
        ("kind/field dispatch outside layers/ and hw/stages.py", lines(DISPATCH, REGISTRIES)),
        ("out_bits == 0 / is_last outside layers/", lines(LAST, ("hwqnn/layers/",))),
        ("json.load of a manifest", lines(MANIFEST_LOAD)),
        ("beat packers", lines(PACKERS)),
        ("beat decoders", lines(DECODERS)),
        ("dict[str, Any]", lines(re.compile(r"dict\[str, Any\]"))),
        ("functions over 80 lines", long_functions()),
    ]
    for name, found in rows:
        print(f"{len(found):4d}  {name}")
        if verbose:
            for f in found:
                print(f"        {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

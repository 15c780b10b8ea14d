"""Builds the C library in sw/ with the package (hwqnn/_libhwqnn*.so, loaded through ctypes by
hwqnn/clib.py). Everything else about the package is in pyproject.toml."""

from pathlib import Path

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "hwqnn._libhwqnn",
            sources=sorted(str(p) for p in Path("sw/src").glob("*.c")),
            include_dirs=["sw/include"],
            extra_compile_args=["-O3", "-std=c99", "-pthread"],
            extra_link_args=["-pthread"],
            optional=True,  # without a C compiler the rest of hwqnn still installs
        )
    ]
)

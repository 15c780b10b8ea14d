"""Cycle-accurate simulation of the generated Verilog: cocotb benches (Python per cycle, random
stalls, reset) and a Verilator C++ harness (whole test sets), both compared with the golden model.

The benches live in the package (not only in the repository's ``sim/``) so that ``hwqnn sim``
works from an installed package.
"""

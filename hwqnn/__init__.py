"""hwqnn: train quantized/binarized networks, export them to a bundle, generate an XNOR-popcount
streaming accelerator in Amaranth, simulate it cycle-accurately, and verify it bit-exactly."""

__version__ = "0.1.0"

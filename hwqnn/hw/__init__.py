"""Amaranth hardware generators: the matrix-vector-threshold unit and the streaming network."""

"""Restoring images: the engine (tiling, precision, statistics), compiled graphs, image I/O, diagnosis, the CLI."""

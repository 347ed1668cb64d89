"""The network: its configuration, the DFR block, DRCNet, the authors' weights, checkpoints and feature probes."""

"""The network: its configuration, the DFR block, DRCNet, the authors' weights, checkpoints, feature probes, and
the Hub's conventions (hub: from_pretrained / save_pretrained / push_to_hub; card: the cards' YAML metadata)."""

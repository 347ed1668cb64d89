"""The network: its configuration, the DFR block, DRCNet, the authors' weights, checkpoints, feature probes, and
the Hub's conventions (hub_mixin: from_pretrained / save_pretrained / push_to_hub; hub: export for the Hub; card:
the cards' YAML metadata).

Inside the room, imports run one way: checkpoint_format and hub_mixin know no network (they build the class they
are handed); network inherits hub_mixin; official, checkpoint and hub name DRCNet and sit above it."""

"""DRCNet Explorer: a faithful PyTorch DRCNet (ECCV 2022) with its Intra-CR loss, and a restoration engine."""
from .config import PRESETS, VARIANTS, DRCNetConfig, make_config
from .model import DRCNet, count_parameters, create_model

__all__ = ["PRESETS", "VARIANTS", "DRCNetConfig", "make_config", "DRCNet", "create_model", "count_parameters"]

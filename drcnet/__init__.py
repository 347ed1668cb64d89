"""DRCNet Explorer: a faithful PyTorch DRCNet (ECCV 2022) with its Intra-CR loss, and a restoration engine."""
from .config import PRESETS, VARIANTS, DRCNetConfig, make_config
from .model import DRCNet, count_parameters, create_model

__all__ = ["PRESETS", "VARIANTS", "DRCNetConfig", "make_config", "DRCNet", "create_model", "count_parameters"]
from .engine import Restorer
from .checkpoint import save_checkpoint, load_checkpoint, CheckpointError
from .official import load_official
from .imageio import load_image, ImageError

__all__ += ["Restorer", "save_checkpoint", "load_checkpoint", "CheckpointError", "load_official", "load_image",
            "ImageError"]

"""DRCNet Explorer: a faithful PyTorch DRCNet (ECCV 2022) with its Intra-CR loss, and a restoration engine."""
from drcnet.config import PRESETS, VARIANTS, DRCNetConfig, make_config
from drcnet.model import DRCNet, count_parameters, create_model

__all__ = ["PRESETS", "VARIANTS", "DRCNetConfig", "make_config", "DRCNet", "create_model", "count_parameters"]
from drcnet.engine import Restorer
from drcnet.checkpoint import save_checkpoint, load_checkpoint, CheckpointError
from drcnet.official import load_official
from drcnet.imageio import load_image, ImageError

__all__ += ["Restorer", "save_checkpoint", "load_checkpoint", "CheckpointError", "load_official", "load_image",
            "ImageError"]

"""RapidNet for OpenMMLab 2.x. ``import rapidnet_mm`` registers its modules in mmpretrain,
mmdet and mmseg (``custom_imports=dict(imports=['rapidnet_mm'])`` in a config)."""
import importlib.util

from . import compat  # noqa: F401  (torch.load safe globals for mmengine checkpoints)
from .checkpoints.initializer import RapidNetPretrained
from .models import ARCH_SETTINGS, RapidNet, RapidNetClsHead, RapidNetDistiller
from .registration import registered
from .version import __version__

# The aligned test resize lives in mmseg's TRANSFORMS: only when mmseg is installed (a failure
# inside an installed mmseg is not hidden).
if importlib.util.find_spec('mmseg') is not None:
    from . import transforms  # noqa: F401

__all__ = ['ARCH_SETTINGS', 'RapidNet', 'RapidNetClsHead', 'RapidNetDistiller',
           'RapidNetPretrained', 'registered', '__version__']

"""RapidNet for OpenMMLab 2.x. ``import rapidnet_mm`` registers its modules in mmpretrain,
mmdet and mmseg (``custom_imports=dict(imports=['rapidnet_mm'])`` in a config)."""
import importlib.util

# First, before mmengine or coremltools load: drop their known noise (see console.py).
from .console import quiet_known_noise

quiet_known_noise()

from . import compat  # noqa: E402,F401  (torch.load safe globals for mmengine checkpoints)
from . import schedulers  # noqa: E402,F401  (TimmCosineLR: the authors' ImageNet lr curve)
from .checkpoints.initializer import RapidNetPretrained  # noqa: E402
from .models import ARCH_SETTINGS, RapidNet, RapidNetClsHead, RapidNetDistiller  # noqa: E402
from .timm_models import register_timm_models  # noqa: E402
from .registration import registered  # noqa: E402
from .version import __version__  # noqa: E402

# timm.create_model('rapidnet_s', ...) and the authors' names ('RapidNet_S', ...)
registered['timm'] = register_timm_models()

# mmpretrain.list_models('rapidnet*'), get_model(name, pretrained=True) and the inferencers by
# name; the authors' Hub files read by mmengine's load_checkpoint are converted in memory.
from .model_hub import register_model_hub  # noqa: E402

register_model_hub()

# The aligned test resize lives in mmseg's TRANSFORMS: only when mmseg is installed (a failure
# inside an installed mmseg is not hidden).
if importlib.util.find_spec('mmseg') is not None:
    from . import transforms  # noqa: F401

__all__ = ['ARCH_SETTINGS', 'RapidNet', 'RapidNetClsHead', 'RapidNetDistiller',
           'RapidNetPretrained', 'registered', '__version__']

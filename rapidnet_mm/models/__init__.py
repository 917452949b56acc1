from .distillation import RapidNetDistiller
from .heads import RapidNetClsHead
from .arch import ARCH_SETTINGS, resolve_arch
from .rapidnet import RapidNet

__all__ = ['ARCH_SETTINGS', 'RapidNet', 'RapidNetClsHead', 'RapidNetDistiller', 'resolve_arch']

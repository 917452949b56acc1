from .distillation import RapidNetDistiller
from .heads import RapidNetClsHead
from .rapidnet import ARCH_SETTINGS, RapidNet, resolve_arch

__all__ = ['ARCH_SETTINGS', 'RapidNet', 'RapidNetClsHead', 'RapidNetDistiller', 'resolve_arch']

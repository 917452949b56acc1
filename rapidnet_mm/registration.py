"""Puts rapidnet_mm's classes into mmpretrain's, mmdet's and mmseg's registries.

Model classes are defined with ``@MODELS.register_module()`` of mmpretrain (a hard dependency);
this module adds them to mmdet's and mmseg's ``MODELS`` (and transforms to their ``TRANSFORMS``)
so that a config of any of the three libraries can say ``type='RapidNet'``. A library that is not
installed is skipped: only its own configs would need it.
"""
import importlib
from typing import Dict, List

from .models import RapidNet, RapidNetClsHead

# Every installed library of LIBRARY_REGISTRIES gets all of these in its MODELS.
SHARED_MODELS = [RapidNet, RapidNetClsHead]
LIBRARY_REGISTRIES = {'mmdet': 'mmdet.registry', 'mmseg': 'mmseg.registry'}

registered: Dict[str, List[str]] = {'mmpretrain': [c.__name__ for c in SHARED_MODELS]}


def register_shared(classes: list, registry_attr: str = 'MODELS') -> None:
    """Register ``classes`` in ``registry_attr`` of every installed library of
    LIBRARY_REGISTRIES (idempotent)."""
    for library, module_name in LIBRARY_REGISTRIES.items():
        try:
            registry = getattr(importlib.import_module(module_name), registry_attr)
        except ImportError:
            continue
        names = registered.setdefault(library, [])
        for cls in classes:
            # module_dict, not get(): get() would import all of mmdet.models / mmseg.models.
            if registry.module_dict.get(cls.__name__) is not cls:
                registry.register_module(module=cls)
            if cls.__name__ not in names:
                names.append(cls.__name__)


register_shared(SHARED_MODELS)

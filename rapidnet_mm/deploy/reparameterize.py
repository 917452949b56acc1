"""Reparameterisation of whole models (classifiers, detectors, segmentors): every RapidNet inside
folds in place, through the ``reparameterize()`` each of its modules carries."""
from typing import Dict, List

import torch.nn as nn

from ..models import RapidNet


def rapidnet_modules(model: nn.Module) -> Dict[str, RapidNet]:
    """Every RapidNet in ``model`` by its qualified name ('' for the model itself)."""
    return {name: m for name, m in model.named_modules() if isinstance(m, RapidNet)}


def reparameterize_model(model: nn.Module) -> List[str]:
    """Fold every RapidNet in ``model`` into its deploy form, in place.

    Only what a deploy config can hold is changed (``backbone.deploy=True`` builds the same
    structure), so the folded state dict loads strictly into the deploy form.

    Args:
        model: A model in eval mode containing at least one RapidNet.

    Returns:
        The names of the RapidNets folded.

    Raises:
        ValueError: no RapidNet in the model, or the model is in training mode (BatchNorm folds
            use the running statistics, which training-mode outputs do not).
    """
    if model.training:
        raise ValueError('reparameterise a model in eval mode (call model.eval() first): the '
                         'folded form reproduces eval-mode outputs only')
    found = rapidnet_modules(model)
    if not found:
        raise ValueError(f'nothing to reparameterise: {type(model).__name__} contains no RapidNet')
    for module in found.values():
        if not module.deploy:
            module.switch_to_deploy()
    return sorted(found)

"""Reparameterisation of whole models: every RapidNet inside folds in place, and for export the
RapidNet classification head collapses to pooling, one 1x1 conv with GELU and one linear."""
import copy
from typing import Dict, List

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..models import RapidNet, RapidNetClsHead


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


class FoldedClsHead(nn.Module):
    """RapidNetClsHead for inference: global average pooling, the embedding as one biased 1x1
    conv with its activation, and ``head``/``dist_head`` merged into one linear layer.

    The merged linear has the mean of the two weights and of the two biases, so its output is
    exactly the mean of both logits, which is what RapidNetClsHead returns in eval mode.

    Args:
        embed: The folded embedding conv (1x1, with bias).
        act: The embedding's activation.
        classifier: The merged linear classifier.
    """

    def __init__(self, embed: nn.Conv2d, act: nn.Module, classifier: nn.Linear) -> None:
        super().__init__()
        self.embed = embed
        self.act = act
        self.classifier = classifier

    def forward(self, feats) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(feats[-1], 1)
        return self.classifier(self.act(self.embed(x)).flatten(1))


@torch.no_grad()
def fold_cls_head(head: RapidNetClsHead) -> FoldedClsHead:
    """A :class:`FoldedClsHead` equal to ``head`` in eval mode; ``head`` is left unchanged.

    Dropout is the identity in eval mode and is dropped.
    """
    if not isinstance(head, RapidNetClsHead):
        raise TypeError(f'fold_cls_head takes a RapidNetClsHead, got {type(head).__name__}')
    embed = copy.deepcopy(head.embed)
    embed.reparameterize()
    linears = [head.head] + ([head.dist_head] if head.dist_head is not None else [])
    classifier = nn.Linear(head.head.in_features, head.head.out_features)
    classifier.weight.copy_(torch.stack([m.weight for m in linears]).mean(0))
    classifier.bias.copy_(torch.stack([m.bias for m in linears]).mean(0))
    return FoldedClsHead(embed.conv, embed.act, classifier).eval()

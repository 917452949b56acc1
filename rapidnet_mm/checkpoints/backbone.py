"""Parameter names of the authors' RapidNet -> rapidnet_mm's.

Shared by the classification, detection and segmentation converters. Keys here are relative to
the network root: the authors' ``stem.stem.*``, ``backbone.{i}.{j}.*`` and head keys
(``prediction.*``, ``head.*``, ``dist_head.*``); ours are ``stem.*``, ``stages.{i}.{j}.*`` (under
``backbone.`` in a model) and ``embed.*``, ``head.*``, ``dist_head.*`` (under ``head.``).
"""
import re
from typing import Dict, List, Optional, Tuple

import torch

from .common import match_rules

Tensor = torch.Tensor

# (pattern on the authors' key, our key template). Block-internal names; order matters only
# for readability: patterns are anchored and disjoint.
_STEM = [
    (r'stem\.stem\.0\.(weight|bias)', r'stem.conv1.conv.\1'),
    (r'stem\.stem\.1\.(.+)', r'stem.conv1.norm.\1'),
    (r'stem\.stem\.3\.(weight|bias)', r'stem.conv2.conv.\1'),
    (r'stem\.stem\.4\.(.+)', r'stem.conv2.norm.\1'),
]
_BLOCK = [
    # downsample (j = 0 of stages > 0)
    (r'conv\.0\.(weight|bias)', r'conv.\1'),
    (r'conv\.1\.(.+)', r'norm.\1'),
    # inverted residual
    (r'dws\.pw1\.(.+)', r'expand.conv.\1'),
    (r'dws\.norm1\.(.+)', r'expand.norm.\1'),
    (r'dws\.dw\.(.+)', r'depthwise.conv.\1'),
    (r'dws\.norm2\.(.+)', r'depthwise.norm.\1'),
    (r'dws\.pw2\.(.+)', r'project.conv.\1'),
    (r'dws\.norm3\.(.+)', r'project.norm.\1'),
    # MLDC block: token mixer
    (r'mixer\.cpe\.pe\.(weight|bias)', r'mixer.pos_enc.conv.\1'),
    (r'mixer\.cpe\.reparam_conv\.(weight|bias)', r'mixer.pos_enc.conv.\1'),  # unfolded below
    (r'mixer\.fc1\.0\.(.+)', r'mixer.fc1.conv.\1'),
    (r'mixer\.fc1\.1\.(.+)', r'mixer.fc1.norm.\1'),
    (r'mixer\.graph_conv\.nn\.0\.(.+)', r'mixer.spatial.branches.0.conv.\1'),
    (r'mixer\.graph_conv\.nn\.1\.(.+)', r'mixer.spatial.branches.0.norm.\1'),
    (r'mixer\.graph_conv\.nn_2\.0\.(.+)', r'mixer.spatial.branches.1.conv.\1'),
    (r'mixer\.graph_conv\.nn_2\.1\.(.+)', r'mixer.spatial.branches.1.norm.\1'),
    (r'mixer\.fc2\.0\.(.+)', r'mixer.fc2.conv.\1'),
    (r'mixer\.fc2\.1\.(.+)', r'mixer.fc2.norm.\1'),
    # MLDC block: large-kernel FFN
    (r'ffn\.conv\.conv\.weight', r'ffn.dwconv.conv.weight'),
    (r'ffn\.norm1\.(.+)', r'ffn.dwconv.norm.\1'),
    (r'ffn\.fc1\.(weight|bias)', r'ffn.fc1.conv.\1'),
    (r'ffn\.norm2\.(.+)', r'ffn.fc1.norm.\1'),
    (r'ffn\.fc2\.(weight|bias)', r'ffn.fc2.conv.\1'),
    (r'ffn\.norm3\.(.+)', r'ffn.fc2.norm.\1'),
    # layer scales: (C, 1, 1) parameters in both
    (r'layer_scale_1', r'layer_scale_1.weight'),  # renamed for IR blocks below
    (r'layer_scale_2', r'layer_scale_2.weight'),
]
_HEAD = [
    (r'prediction\.1\.(weight|bias)', r'embed.conv.\1'),
    (r'prediction\.2\.(.+)', r'embed.norm.\1'),
    (r'head\.(weight|bias)', r'head.\1'),
    (r'dist_head\.(weight|bias)', r'dist_head.\1'),
]
_BLOCK_KEY = re.compile(r'backbone\.(\d+)\.(\d+)\.(.+)')


def map_backbone_key(key: str) -> Optional[str]:
    """Our name (relative to the backbone) for an authors' backbone key, or None."""
    mapped = match_rules(_STEM, key)
    if mapped is not None:
        return mapped
    m = _BLOCK_KEY.fullmatch(key)
    if m is None:
        return None
    stage, block, rest = m.groups()
    inner = match_rules(_BLOCK, rest)
    if inner is None:
        return None
    return f'stages.{stage}.{block}.{inner}'


def map_head_key(key: str) -> Optional[str]:
    """Our name (relative to ``RapidNetClsHead``) for an authors' head key, or None."""
    return match_rules(_HEAD, key)


def unfold_positional_encoding(weight: Tensor) -> Tensor:
    """The training-form ``pe`` kernel from a folded ``reparam_conv`` (identity removed)."""
    weight = weight.clone()
    k = weight.shape[-1]
    weight[:, 0, k // 2, k // 2] -= 1.0
    return weight


def convert_original_state(
    state: Dict[str, Tensor],
    backbone_prefix: str = 'backbone.',
    head_prefix: Optional[str] = 'head.',
    source_prefix: str = '',
) -> Tuple[Dict[str, Tensor], List[str]]:
    """Rename the authors' RapidNet keys to ours.

    Args:
        state: The authors' state dict.
        backbone_prefix: Prefix of our backbone keys in the target model.
        head_prefix: Prefix of our head keys in the target model, or None to treat head keys as
            unmapped.
        source_prefix: Prefix of the network in ``state`` (``'backbone.'`` in the authors'
            detection and segmentation checkpoints); keys without it are left unmapped.

    Returns:
        ``(converted, unmapped)``: the renamed tensors (positional encodings unfolded, 1x1-conv
        classifiers flattened to linear weights) and the source keys that fit no rule.
    """
    converted: Dict[str, Tensor] = {}
    unmapped: List[str] = []
    # An inverted residual's single scale is ``layer_scale`` in ours, ``layer_scale_1`` in theirs.
    inverted_residuals = {m.group(1, 2) for m in (_BLOCK_KEY.fullmatch(k[len(source_prefix):])
                                                  for k in state if k.startswith(source_prefix))
                          if m and m.group(3).startswith('dws.')}
    for full_key, value in state.items():
        if not full_key.startswith(source_prefix):
            unmapped.append(full_key)
            continue
        key = full_key[len(source_prefix):]
        ours = map_backbone_key(key)
        target_prefix = backbone_prefix
        if ours is None and head_prefix is not None:
            ours = map_head_key(key)
            target_prefix = head_prefix
        if ours is None:
            unmapped.append(full_key)
            continue
        m = _BLOCK_KEY.fullmatch(key)
        if m and m.group(3) == 'layer_scale_1' and m.group(1, 2) in inverted_residuals:
            ours = ours.replace('layer_scale_1.weight', 'layer_scale.weight')
        if key.endswith('cpe.reparam_conv.weight'):
            value = unfold_positional_encoding(value)
        if target_prefix == head_prefix and re.fullmatch(r'(dist_)?head\.weight', key):
            value = value.flatten(1)
        converted[target_prefix + ours] = value
    return converted, unmapped

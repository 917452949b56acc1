"""Reparameterisation of whole models (classifiers, detectors, segmentors): every RapidNet inside
folds in place, through the ``reparameterize()`` each of its modules carries; and deploy
checkpoints written from training ones (``tools/deployment/reparameterize.py``)."""
import copy
import os
import os.path as osp
import tempfile
from typing import Callable, Dict, List, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.config import Config

from ..config import ConfigError, build_model
from ..errors import InputError
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
        InputError: no RapidNet in the model.
        ValueError: the model is in training mode (BatchNorm folds use the running
            statistics, which training-mode outputs do not).
    """
    if model.training:
        raise ValueError('reparameterise a model in eval mode (call model.eval() first): the '
                         'folded form reproduces eval-mode outputs only')
    found = rapidnet_modules(model)
    if not found:
        raise InputError(f'nothing to reparameterise: {type(model).__name__} contains no RapidNet')
    for module in found.values():
        if not module.deploy:
            module.switch_to_deploy()
    return sorted(found)


def deploy_config(cfg: Config, module_names: Sequence[str]) -> Config:
    """A copy of ``cfg`` with ``deploy=True`` on the entries that built the named modules (names
    as :func:`reparameterize_model` returns them, '' for the model itself)."""
    cfg = copy.deepcopy(cfg)
    for name in module_names:
        node = cfg.model
        for part in name.split('.') if name else []:
            if part not in node:
                raise ConfigError(f'cannot find the config entry of {name!r} to build its '
                                  'deploy form (expected model.<name>)')
            node = node[part]
        node['deploy'] = True
    return cfg


def eval_outputs(model: nn.Module, x: torch.Tensor) -> List[torch.Tensor]:
    """What the two forms of a model are compared on: a classifier's logits, else the detector's
    or segmentor's extracted features."""
    from mmpretrain.models import ImageClassifier
    with torch.no_grad():
        if isinstance(model, ImageClassifier) and model.with_head:
            return [model.head(model.extract_feat(x))]
        return list(model.extract_feat(x))


def write_deploy_checkpoint(cfg: Config, checkpoint: str, out: str,
                            input_size: Tuple[int, int] = (224, 224), rel_tol: float = 1e-4,
                            log: Callable[[str], None] = print) -> Tuple[List[str], float]:
    """Fold the model of ``cfg`` loaded with ``checkpoint`` and write its state dict to ``out``,
    after checking that the deploy form built from the config loads it strictly and gives the
    training form's outputs (largest difference relative to the output scale <= ``rel_tol``).
    ``out`` is written only when that check passes.

    Returns:
        The names of the folded RapidNets and the largest relative difference.

    Raises:
        ConfigError: a checkpoint that does not fit, or a deploy form that differs.
    """
    model = build_model(cfg, checkpoint)
    original = copy.deepcopy(model)
    names = reparameterize_model(model)
    log(f'folded: {", ".join(n or "<model>" for n in names)}')
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    meta = dict(deploy=True, reparameterized=names, source=osp.abspath(checkpoint),
                config=cfg.filename)
    folder = osp.dirname(osp.abspath(out))
    os.makedirs(folder, exist_ok=True)
    fd, staged = tempfile.mkstemp(prefix=f'.{osp.basename(out)}.', dir=folder)
    os.close(fd)
    try:
        torch.save(dict(state_dict=state, meta=meta), staged)
        deploy = build_model(deploy_config(cfg, names), staged)
        x = torch.randn(1, 3, *input_size, generator=torch.Generator().manual_seed(0))
        worst = max((ref - got).abs().max().item() / max(ref.abs().max().item(), 1e-12)
                    for ref, got in zip(eval_outputs(original, x), eval_outputs(deploy, x)))
        log(f'the deploy form (model.{names[0] or "<model>"}.deploy=True) loads the folded '
            f'weights strictly; largest output difference {worst:.2g} of the output scale')
        if worst > rel_tol:
            raise ConfigError(f'the deploy form does not reproduce the training form (relative '
                              f'difference {worst:.2g}); nothing was written to {out}')
        os.replace(staged, out)
    finally:
        if osp.exists(staged):
            os.remove(staged)
    log(f'saved {out} ({len(state)} tensors)')
    return names, worst

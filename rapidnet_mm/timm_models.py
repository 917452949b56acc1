"""RapidNet in timm: ``import rapidnet_mm`` registers ``rapidnet_ti``, ``rapidnet_s``,
``rapidnet_m`` and ``rapidnet_b``, and the authors' names ``RapidNet_Ti`` ... ``RapidNet_B`` (the
same models), with timm's model registry::

    import rapidnet_mm, timm
    model = timm.create_model('rapidnet_s', pretrained=True)

``pretrained=True`` loads the authors' ImageNet file from the Hugging Face Hub
(``SLDGroup/RapidNet``, ``RapidNet_S.pth``; through :mod:`rapidnet_mm.checkpoints.hub`, so
huggingface_hub's cache, ``HF_ENDPOINT``, ``HF_HUB_OFFLINE`` and tokens apply) and converts its
EMA weights in memory with :mod:`rapidnet_mm.checkpoints`, as ``RapidNetPretrained`` does. A
local copy: ``pretrained_cfg_overlay=dict(file='/path/to/RapidNet_S.pth')``.
``features_only=True`` (with ``out_indices``) gives the stage outputs (strides 4, 8, 16, 32), and
``timm.utils.reparameterize_model`` folds the model for inference; both forms script with
``torch.jit.script``. ``global_pool=''`` (with ``num_classes=0``) gives the last stage's unpooled
feature map, ``num_classes=0`` alone the pooled embedding.

The network is :class:`~rapidnet_mm.models.RapidNet` with
:class:`~rapidnet_mm.models.RapidNetClsHead` in :class:`RapidNetTimm`, a thin classifier with
timm's interface; its state dict has the names of the mmpretrain classifier of
``configs/cls/rapidnet_*_in1k.py``.
"""
import warnings
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn

from .checkpoints.hub import AUTHORS_FILES, AUTHORS_REPO, AUTHORS_REVISION, HubFile
from .errors import InputError
from .models.heads import RapidNetClsHead
from .models.arch import resolve_arch
from .models.rapidnet import RapidNet

# timm name -> RapidNet arch: ours in timm's style, and the authors' names
TIMM_NAMES: Dict[str, str] = {}
for _arch, _suffix in (('ti', 'Ti'), ('s', 'S'), ('m', 'M'), ('b', 'B')):
    TIMM_NAMES[f'rapidnet_{_arch}'] = _arch
    TIMM_NAMES[f'RapidNet_{_suffix}'] = _arch
CLASSIFIER_KEYS = ('head.head', 'head.dist_head')
# timm's global pool types that keep the channel count, which the head's embedding (a 1x1 conv
# after the pooling) is built for; '' is no pooling at all.
POOL_TYPES = ('avg', 'max', 'avgmax', 'fast', 'fastavg', 'fastmax', 'fastavgmax')
STEM_CONV = 'backbone.stem.conv1.conv'
LOCAL_COPY = "pass pretrained_cfg_overlay=dict(file='/path/to/{name}') with a local copy"

default_cfgs: dict = {}  # filled by register_timm_models; timm's register_model reads it
__all__: List[str] = ['RapidNetTimm', 'TIMM_NAMES', 'register_timm_models']


class RapidNetTimm(nn.Module):
    """A RapidNet classifier with timm's model interface.

    The head pools the last stage globally, embeds the pooled features (1x1 conv, BN, GELU) and
    classifies them. The output is the logits; with ``num_classes=0`` the embedding
    (``head_hidden_size`` features); with ``num_classes=0`` and ``global_pool=''`` the last
    stage's feature map itself (``num_features`` channels), as :meth:`forward_features` gives it.

    Args:
        arch: 'ti', 's', 'm' or 'b'.
        num_classes: Classes; 0 gives the embedding (``head_hidden_size`` features) instead.
        in_chans: Input channels.
        global_pool: ``'avg'`` (the authors' network), another of :data:`POOL_TYPES` (timm's
            pooling, before the embedding), or ``''``: no pooling and no embedding (needs
            ``num_classes=0``).
        drop_rate: Dropout before the classifiers.
        drop_path_rate: Stochastic depth (the authors' per-block rates, ``'original'``).
        distillation: Keep the distillation classifier ``dist_head`` (the published models have
            it); in eval mode, and in training unless :meth:`set_distilled_training`, the
            output is the mean of both classifiers, as the authors' model returns.
        **backbone_kwargs: More :class:`RapidNet` arguments (e.g. ``deploy=True``).
    """

    def __init__(self, arch: str = 's', num_classes: int = 1000, in_chans: int = 3,
                 global_pool: str = 'avg', drop_rate: float = 0., drop_path_rate: float = 0.,
                 distillation: bool = True, **backbone_kwargs) -> None:
        super().__init__()
        settings = resolve_arch(arch)
        self.global_pool = _global_pool(global_pool, num_classes)
        self.backbone = RapidNet(arch=arch, in_channels=in_chans, drop_path_rate=drop_path_rate,
                                 **backbone_kwargs)
        # RapidNetClsHead needs a class count; num_classes=0 swaps its classifiers for Identity
        self.head = RapidNetClsHead(arch=arch, num_classes=max(num_classes, 1), dropout=drop_rate,
                                    distillation=distillation)
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.num_features = settings['channels'][-1]
        self.head_hidden_size = settings['head_width']
        self.distilled_training = False
        self.feature_info = [dict(num_chs=c, reduction=4 * 2**i, module=f'backbone.stages.{i}')
                             for i, c in enumerate(settings['channels'])]
        if num_classes == 0:
            self.reset_classifier(0)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's feature map (stride 32)."""
        return self.backbone.forward_stages(x)[-1]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False
                     ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        """Logits of the last stage's map ``x``; ``pre_logits``: what the classifiers take (the
        embedding, or ``x`` itself without pooling)."""
        if self.global_pool.pool_type == '':
            return x  # no pooling: no embedding and no classifier (num_classes is 0)
        x = self.head.embedding(self.global_pool(x))
        if pre_logits or self.num_classes == 0:
            return x
        if self.head.dist_head is None:
            return self.head.head(x)
        logits, dist_logits = self.head.head(x), self.head.dist_head(x)
        if self.distilled_training and self.training and not torch.jit.is_scripting():
            return logits, dist_logits
        return (logits + dist_logits) / 2

    def forward(self, x: torch.Tensor):
        return self.forward_head(self.forward_features(x))

    def set_distilled_training(self, enable: bool = True) -> None:
        """Return ``(head, dist_head)`` logits in training, for a distillation loss."""
        self.distilled_training = enable

    def get_classifier(self) -> nn.Module:
        return self.head.head

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """New, freshly initialised classifiers for ``num_classes`` (0: none, the embedding is
        the output), and a new ``global_pool`` unless None (``''``: the unpooled map is the
        output; see the class's ``global_pool``)."""
        pool = _global_pool(self.global_pool.pool_type if global_pool is None else global_pool,
                            num_classes)
        if global_pool is not None:
            self.global_pool = pool
        self.num_classes = num_classes
        self.head.num_classes = num_classes
        weight = self.head.embed.conv.weight
        make = (lambda: nn.Linear(self.head_hidden_size, num_classes, device=weight.device,
                                  dtype=weight.dtype))
        self.head.head = make() if num_classes > 0 else nn.Identity()
        self.head.dist_head = make() if num_classes > 0 and self.head.distillation else None

    def forward_intermediates(self, x: torch.Tensor,
                              indices: Optional[Union[int, List[int]]] = None,
                              norm: bool = False, stop_early: bool = False,
                              output_fmt: str = 'NCHW', intermediates_only: bool = False):
        """timm's feature API: the stage outputs ``indices`` names (an int n: the last n), and
        unless ``intermediates_only`` the last stage's map first."""
        from timm.models._features import feature_take_indices
        if output_fmt != 'NCHW':
            raise InputError(f"RapidNet's features are NCHW; got output_fmt={output_fmt!r}")
        take_indices, _ = feature_take_indices(len(self.backbone.stages), indices)
        stages = self.backbone(x)  # every stage that is left (all unless pruned)
        intermediates = [stages[i] for i in take_indices]
        return intermediates if intermediates_only else (stages[-1], intermediates)

    def prune_intermediate_layers(self, indices: Union[int, List[int]] = 1,
                                  prune_norm: bool = False, prune_head: bool = True) -> List[int]:
        """Drop the stages after the last one ``indices`` needs, and the head."""
        from timm.models._features import feature_take_indices
        take_indices, max_index = feature_take_indices(len(self.backbone.stages), indices)
        self.backbone.stages = self.backbone.stages[:max_index + 1]
        if prune_head:
            self.head = nn.Identity()
            self.num_classes = 0
        return take_indices

    def converted_state(self, checkpoint: dict) -> Dict[str, torch.Tensor]:
        """This model's state from a loaded file (the authors' layout, EMA weights, or ours):
        a different class count keeps this model's fresh classifiers, a different input
        channel count adapts the stem's first conv as timm does for its own models.

        Raises:
            CheckpointLayoutError: a file that does not fit (keys listed).
        """
        from timm.models import adapt_input_conv

        from .checkpoints.common import check_fits
        from .checkpoints.loading import to_our_layout
        loaded = to_our_layout(checkpoint, weights='ema')
        state = dict(loaded.state_dict)
        own = self.state_dict()
        prefixes = tuple(f'{c}.' for c in CLASSIFIER_KEYS)
        for key in [k for k in state if k.startswith(prefixes)]:
            if key not in own or own[key].shape != state[key].shape:
                del state[key]  # another class count (or no dist_head): this model's own
        state.update({k: v for k, v in own.items() if k.startswith(prefixes) and k not in state})
        stem = f'{STEM_CONV}.weight'
        if stem in state and self.in_chans != state[stem].shape[1]:
            state[stem] = adapt_input_conv(self.in_chans, state[stem])
        check_fits(state, {k: v.shape for k, v in own.items()},
                   f'timm RapidNet ({loaded.source})')
        return state

    def load_pretrained(self, checkpoint_path: str) -> None:
        """timm's hook for weights in a foreign format (``pretrained_cfg['custom_load']``):
        read ``checkpoint_path`` and load :meth:`converted_state` strictly."""
        from .checkpoints.loading import read_checkpoint
        self.load_state_dict(self.converted_state(read_checkpoint(checkpoint_path)),
                             strict=True)


def _global_pool(pool_type: str, num_classes: int) -> nn.Module:
    """timm's pooling layer for ``pool_type`` (no flattening: the embedding is a conv).

    Raises:
        ValueError: a pool type the head cannot take, or no pooling with a classifier.
    """
    from timm.layers import SelectAdaptivePool2d
    if pool_type == '' and num_classes > 0:
        raise InputError(f"RapidNet: global_pool='' gives the unpooled feature map, which no "
                         f'classifier takes; set num_classes=0 too (got {num_classes})')
    if pool_type != '' and pool_type not in POOL_TYPES:
        raise InputError(f'RapidNet: global_pool={pool_type!r} is not supported: the embedding '
                         'after the pooling takes the last stage\'s channels; choose one of '
                         f"{POOL_TYPES}, or '' for the unpooled feature map")
    return SelectAdaptivePool2d(pool_type=pool_type, flatten=False)


def _filter_state_dict(state_dict: dict, model: RapidNetTimm) -> Dict[str, torch.Tensor]:
    """timm's ``pretrained_filter_fn``, for weights given in memory
    (``pretrained_cfg_overlay=dict(state_dict=...)``)."""
    return model.converted_state(state_dict)


def _weights_location(cfg) -> Optional[str]:
    """Where a resolved timm pretrained cfg says the weights are: ``file``, else the Hub file
    (``hf_hub_id``, ``hf_hub_filename``), else ``url``."""
    if cfg.file:
        return cfg.file
    if cfg.hf_hub_id and cfg.hf_hub_filename:
        return f'hf://{cfg.hf_hub_id}/{cfg.hf_hub_filename}'
    return cfg.url


def _create(name: str, arch: str, pretrained: bool = False, **kwargs) -> nn.Module:
    from timm.models import build_model_with_cfg
    from timm.models._builder import resolve_pretrained_cfg

    from .checkpoints.hub import fetch_checkpoint
    if pretrained:
        cfg = resolve_pretrained_cfg(name, kwargs.get('pretrained_cfg'),
                                     kwargs.get('pretrained_cfg_overlay'))
        location = _weights_location(cfg)
        if cfg.state_dict is None and location:
            # Fetched here through rapidnet_mm (huggingface_hub for the Hub) and handed to
            # timm as a local file with custom_load: timm then calls load_pretrained, which
            # converts the authors' layout; timm's own loader would not.
            local = fetch_checkpoint(location, LOCAL_COPY.format(name=location.rsplit('/', 1)[-1]),
                                     cache_dir=kwargs.get('cache_dir'))
            kwargs['pretrained_cfg_overlay'] = dict(kwargs.get('pretrained_cfg_overlay') or {},
                                                    file=local, custom_load=True)
    return build_model_with_cfg(
        RapidNetTimm, name, pretrained, arch=arch, pretrained_filter_fn=_filter_state_dict,
        feature_cfg=dict(feature_cls='getter', out_indices=(0, 1, 2, 3)), **kwargs)


def _entrypoint(name: str, arch: str):
    """A timm model entrypoint called ``name``."""

    def create(pretrained: bool = False, **kwargs) -> nn.Module:
        return _create(name, arch, pretrained, **kwargs)

    create.__name__ = create.__qualname__ = name
    create.__module__ = __name__
    create.__doc__ = (f'RapidNet-{arch.upper() if arch != "ti" else "Ti"} classifier; '
                      "pretrained=True: the authors' ImageNet-1K weights (EMA).")
    return create


def _pretrained_cfg(arch: str) -> dict:
    filename = AUTHORS_FILES['classification'][arch]
    return dict(
        hf_hub_id=AUTHORS_REPO, hf_hub_filename=filename,
        url=HubFile(AUTHORS_REPO, filename, AUTHORS_REVISION).url,
        num_classes=1000, input_size=(3, 224, 224), pool_size=(7, 7),
        # the authors' evaluation (their --crop_pct default): shorter side int(224 / 0.9) = 248,
        # bicubic, centre crop 224; timm resizes to floor(224 / 0.9) = 248 as well
        crop_pct=0.9, interpolation='bicubic',
        mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
        first_conv=STEM_CONV, classifier=CLASSIFIER_KEYS,
        paper_name='RapidNet: Multi-Level Dilated Convolution Based Mobile Backbone')


def register_timm_models() -> List[str]:
    """Register :data:`TIMM_NAMES` with timm (once); the names registered.

    If timm cannot be imported, nothing is registered and a warning says why: rapidnet_mm
    itself keeps working.
    """
    global default_cfgs
    try:
        from timm.models import (generate_default_cfgs, is_model, model_entrypoint,
                                 register_model)
    except ImportError as err:
        warnings.warn(f'rapidnet_mm: timm could not be imported ({err}); the RapidNet models '
                      "are not registered with timm's create_model")
        return []
    default_cfgs = generate_default_cfgs({name: _pretrained_cfg(arch)
                                          for name, arch in TIMM_NAMES.items()})
    for name, arch in TIMM_NAMES.items():
        if is_model(name) and model_entrypoint(name).__module__ == __name__:
            continue  # registered by an earlier call
        register_model(_entrypoint(name, arch))
    return list(TIMM_NAMES)

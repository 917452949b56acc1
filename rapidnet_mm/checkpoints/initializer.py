"""``init_cfg=dict(type='RapidNetPretrained', checkpoint=...)``: a RapidNet backbone's weights from
the authors' ImageNet file as published (``RapidNet_S.pth``, a local path or its Hugging Face Hub
URL, downloaded into huggingface_hub's cache), converted in memory, or from a file already in our
names (``tools/model_converters/convert_official.py``'s output, an mmpretrain run's checkpoint).

mmengine's ``Pretrained`` loads non-strictly and reads only our names; this one finds the layout,
converts through :mod:`rapidnet_mm.checkpoints` and loads every backbone tensor strictly, so a
wrong or foreign file stops with its keys listed instead of leaving the backbone half-initialised.

mmengine applies only ``type='Pretrained'`` after the children's own ``init_weights``; other types,
this one included, run before them. RapidNet's submodules are plain ``nn.Module``s without
``init_weights``, so nothing re-initialises over the loaded tensors
(``tests/test_pretrained_init.py`` compares the features after a whole detector's
``init_weights``).
"""
from typing import Optional

from mmengine.logging import print_log
from mmengine.registry import WEIGHT_INITIALIZERS

from .common import CheckpointLayoutError, check_fits
from .loading import file_keys, read_checkpoint, to_our_layout


@WEIGHT_INITIALIZERS.register_module()
class RapidNetPretrained:
    """Load a RapidNet backbone from the authors' ImageNet checkpoint or a converted one.

    Args:
        checkpoint: The authors' ``RapidNet_{Ti,S,M,B}.pth`` (or one of their
            detection/segmentation files), or an mmengine checkpoint in our names: a local path,
            a Hub URL (``https://huggingface.co/SLDGroup/RapidNet/resolve/main/RapidNet_S.pth``,
            ``hf://SLDGroup/RapidNet/RapidNet_S.pth``) or another http(s) URL.
        prefix: Prefix of the backbone's keys in the (converted) file; ``'backbone.'`` for
            classifiers, detectors and segmentors alike.
        weights: Which set of an authors' ImageNet file: 'ema' (``state_dict_ema``, default, as
            the authors' downstream code loads) or 'raw' (``state_dict``).
        map_location: Kept for the signature of mmengine's ``Pretrained``; files are read on CPU
            and copied into the module where it lives.
    """

    def __init__(self, checkpoint: str, prefix: str = 'backbone.', weights: str = 'ema',
                 map_location: Optional[str] = 'cpu') -> None:
        self.checkpoint = checkpoint
        self.prefix = prefix
        self.weights = weights
        self.map_location = map_location

    def __call__(self, module) -> None:
        ckpt = read_checkpoint(self.checkpoint,
                               instead='point init_cfg.checkpoint at a local copy')
        loaded = to_our_layout(ckpt, weights=self.weights)
        state = {k[len(self.prefix):]: v for k, v in loaded.state_dict.items()
                 if k.startswith(self.prefix)}
        if not state:
            raise CheckpointLayoutError(
                f'{self.checkpoint} holds no {self.prefix!r} tensors: neither an authors\' '
                'RapidNet checkpoint nor one in rapidnet_mm names; its keys are',
                file_keys(ckpt))
        own = module.state_dict()
        try:
            check_fits(state, {k: v.shape for k, v in own.items()},
                       f'this {type(module).__name__} ({self.prefix!r} keys of {self.checkpoint})')
        except CheckpointLayoutError as err:
            raise CheckpointLayoutError(f'{self.checkpoint} ({loaded.source}) does not fit: '
                                        f'{err}') from None
        module.load_state_dict(state, strict=True)
        print_log(f'RapidNetPretrained: loaded all {len(state)} tensors of '
                  f'{type(module).__name__} from {self.checkpoint} ({loaded.source})',
                  logger='current')
        if hasattr(module, '_params_init_info'):
            from mmengine.model.weight_init import update_init_info
            update_init_info(module, init_info=f'RapidNetPretrained: load from {self.checkpoint}')

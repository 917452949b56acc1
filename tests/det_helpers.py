"""Shared by the detection tests: config paths, building a detector on CPU, synthetic batches,
authors' mmdet 2.28 checkpoints synthesised from a model."""
import os.path as osp
import re
from typing import List, Optional

import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from original_layout import OriginalDownstreamBackbone, randomize_
from tool_helpers import ROOT

DET_CONFIGS = {arch: osp.join(ROOT, 'configs', 'det', f'maskrcnn_rapidnet_{arch}_coco.py')
               for arch in ('ti', 's', 'm', 'b')}
DEMO_CONFIG = osp.join(ROOT, 'configs', 'demo', 'maskrcnn_rapidnet_s_tiny_coco.py')


def load_cfg(path: str, options: Optional[dict] = None) -> Config:
    import rapidnet_mm  # noqa: F401
    cfg = Config.fromfile(path)
    if options:
        cfg.merge_from_dict(options)
    return cfg


def build_detector(cfg: Config, pretrained: bool = False):
    """Build ``cfg.model`` with mmdet's registry; without ``pretrained`` the backbone keeps its
    own initialisation (no checkpoint file needed)."""
    from mmdet.registry import MODELS
    model_cfg = cfg.model.copy()
    if not pretrained:
        model_cfg.backbone.init_cfg = None
    # in mmdet's scope for this build only: a scope left behind would leak into other tests
    with DefaultScope.overwrite_default_scope('mmdet'):
        return MODELS.build(model_cfg)


def synthetic_batch(model, size: int = 128, num_images: int = 1, seed: int = 0) -> dict:
    """A preprocessed batch with two boxes and masks per image (what a dataloader yields)."""
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    g = torch.Generator().manual_seed(seed)
    inputs: List[torch.Tensor] = []
    samples = []
    for _ in range(num_images):
        inputs.append((torch.rand(3, size, size, generator=g) * 255).to(torch.uint8))
        sample = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                             scale_factor=(1.0, 1.0)))
        masks = torch.zeros(2, size, size, dtype=torch.uint8)
        masks[0, 10:50, 12:60] = 1
        masks[1, 64:110, 70:120] = 1
        instances = InstanceData()
        instances.bboxes = torch.tensor([[12., 10., 60., 50.], [70., 64., 120., 110.]])
        instances.labels = torch.tensor([0, 1])
        instances.masks = BitmapMasks(masks.numpy(), size, size)
        sample.gt_instances = instances
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def inverse_rename(ours: str) -> str:
    """Our (mmdet 3.x) neck/head key -> the mmdet 2.28 name the converter maps to it (the
    inverse of ``detection.NECK_AND_HEAD_RULES``, read backwards: template -> pattern)."""
    from rapidnet_mm.checkpoints import detection
    for pattern, template in detection.NECK_AND_HEAD_RULES:
        parts = re.split(r'\\(\d)', template)  # literal, group number, literal, ...
        regex = ''.join(re.escape(p) if i % 2 == 0 else f'(?P<g{p}>[^.]+)'
                        for i, p in enumerate(parts))
        m = re.fullmatch(regex, ours)
        if m:
            groups = iter(m.group(f'g{n}') for n in range(1, len(parts) // 2 + 1))
            return re.sub(r'\([^)]*\)', lambda _: next(groups), pattern).replace('\\.', '.')
    raise KeyError(f'no rule produces {ours}')


def synthesise_mmdet2_checkpoint(model, seed: int = 1) -> tuple:
    """An mmdet 2.28 RapidNet-M Mask R-CNN checkpoint and the authors' backbone it holds."""
    original = randomize_(OriginalDownstreamBackbone('m'), seed=seed).eval()
    state = {f'backbone.{k}': v.clone() for k, v in original.state_dict().items()}
    g = torch.Generator().manual_seed(seed)
    for key, value in model.state_dict().items():
        if not key.startswith('backbone.'):
            state[inverse_rename(key)] = torch.randn(value.shape, generator=g)
    meta = dict(mmdet_version='2.28.2', CLASSES=tuple(f'class{i}' for i in range(80)),
                epoch=12, iter=87960)
    return dict(state_dict=state, meta=meta, optimizer={'state': {}}), original

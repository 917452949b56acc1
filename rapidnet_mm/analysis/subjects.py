"""What the benchmark times: the models (:class:`Subject`, each with its training and deploy
forms), built from our configs or from timm for the peers, and the ImageNet top-1 each one's
authors published (:data:`PEERS`, :data:`RAPIDNET_ACCURACY`), with the source of every figure."""
import copy
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn

from ..deploy.reparameterize import rapidnet_modules, reparameterize_model
from ..errors import InputError
from ..models import ARCH_SETTINGS, RapidNetClsHead
from ..timing import Timing


@dataclass(frozen=True)
class Accuracy:
    """An ImageNet-1K top-1 figure, the input resolution it was measured at, and where it is
    stated."""
    top1: float
    resolution: int  # square input side of the published figure
    source: str


# Top-1 accuracies as the models' own authors state them; None where we cannot cite one (the
# paper's figures for S, M and B are in neither the authors' README nor their Hub files).
RAPIDNET_ACCURACY: Dict[str, Accuracy] = {
    'ti': Accuracy(76.3, 224, 'RapidNet paper, abstract (distilled)'),
}
_REPVIT = 'RepViT official README (THU-MIG/RepViT), 300 epochs, distilled'
_FASTVIT = 'FastViT official README (apple/ml-fastvit), distilled'
_STARNET = 'StarNet official README (ma-xu/Rewrite-the-Stars, imagenet/)'
# The MobileNetV4 authors released no PyTorch weights; timm trained the ones it ships.
_MNV4 = 'timm model card results table (mobilenetv4_conv_*, weights trained by timm)'
PEERS: Dict[str, tuple] = {
    # timm name: (label, accuracy)
    'mobilenetv2_140': ('MobileNetV2x1.4', Accuracy(
        74.7, 224, 'MobileNetV2 paper (Sandler et al., CVPR 2018), as quoted in the RapidNet '
        'and EfficientFormer abstracts')),
    'mobilenetv4_conv_small': ('MobileNetV4-Conv-S', Accuracy(
        73.8, 224, f'{_MNV4}: e2400_r224_in1k at 224')),
    'mobilenetv4_conv_medium': ('MobileNetV4-Conv-M', Accuracy(
        79.9, 256, f'{_MNV4}: e500_r256_in1k at 256')),
    'repvit_m0_9': ('RepViT-M0.9', Accuracy(78.7, 224, _REPVIT)),
    'repvit_m1_1': ('RepViT-M1.1', Accuracy(80.7, 224, _REPVIT)),
    'efficientformer_l1': ('EfficientFormer-L1', Accuracy(
        79.2, 224, 'EfficientFormer paper abstract (Li et al., NeurIPS 2022), 300 epochs, '
        'distilled')),
    'efficientformerv2_s1': ('EfficientFormerV2-S1', Accuracy(
        79.0, 224, 'EfficientFormerV2 official README (snap-research/EfficientFormer), 300 '
        'epochs, distilled')),
    'fastvit_t8': ('FastViT-T8', Accuracy(77.2, 256, _FASTVIT)),
    'fastvit_t12': ('FastViT-T12', Accuracy(80.3, 256, _FASTVIT)),
    'fastvit_sa12': ('FastViT-SA12', Accuracy(81.9, 256, _FASTVIT)),
    'starnet_s3': ('StarNet-S3', Accuracy(77.4, 224, _STARNET)),
    'starnet_s4': ('StarNet-S4', Accuracy(78.8, 224, _STARNET)),
}


@dataclass
class Subject:
    """A model to time: a forward for each form, and what it computes."""
    name: str
    what: str  # 'classifier' or 'backbone+neck'
    forms: Dict[str, nn.Module]
    params: Dict[str, int]
    accuracy: Optional[Accuracy] = None
    macs: int = 0  # of the deploy form (the work the task needs) for one image
    diffs: Dict[str, float] = field(default_factory=dict)
    results: Dict[int, Dict[str, Timing]] = field(default_factory=dict)
    # batch -> label -> why the entry could not be built or run (its export failed, ...)
    failures: Dict[int, Dict[str, str]] = field(default_factory=dict)


class ClassifierForward(nn.Module):
    """``head(extract_feat(x))`` of an mmpretrain classifier (its eval output)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.head(self.model.extract_feat(x))


class FeatureForward(nn.Module):
    """``extract_feat(x)`` (backbone and neck) of a detector or segmentor."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor):
        return self.model.extract_feat(x)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def reparameterize_timm_parts(model: nn.Module) -> None:
    """Fold, in place, the timm networks that mmpretrain's wrappers hold (``TimmClassifier.model``,
    ``TIMMBackbone.timm_model``, e.g. the configs/repvit/ models) with timm's own
    reparameterisation, as :func:`peer_subject` does for a bare timm model."""
    from mmpretrain.models import TIMMBackbone, TimmClassifier
    from timm.utils.model import reparameterize_model as timm_reparameterize
    for module in list(model.modules()):
        if isinstance(module, TimmClassifier):
            timm_reparameterize(module.model, inplace=True)
        elif isinstance(module, TIMMBackbone):
            timm_reparameterize(module.timm_model, inplace=True)


def config_subject(name: str, model: nn.Module) -> Subject:
    """Training form (the eval-mode model as built) and deploy form (RapidNets folded, the
    RapidNet classification head folded, timm networks folded by timm) of an OpenMMLab model."""
    from mmpretrain.models import ImageClassifier, TimmClassifier
    model = model.eval()
    deploy = copy.deepcopy(model)
    if rapidnet_modules(deploy):
        reparameterize_model(deploy)
    reparameterize_timm_parts(deploy)
    if isinstance(model, TimmClassifier):  # the timm classifier itself is the eval forward
        return Subject(name, 'classifier', dict(train=model.model, deploy=deploy.model),
                       dict(train=n_params(model.model), deploy=n_params(deploy.model)))
    if isinstance(model, ImageClassifier) and model.with_head:
        if isinstance(deploy.head, RapidNetClsHead):
            deploy.head.reparameterize()
        train_fw, deploy_fw = ClassifierForward(model), ClassifierForward(deploy)
        what = 'classifier'
    else:
        train_fw, deploy_fw = FeatureForward(model), FeatureForward(deploy)
        what = 'backbone+neck'
    return Subject(name, what, dict(train=train_fw, deploy=deploy_fw),
                   dict(train=n_params(train_fw), deploy=n_params(deploy_fw)))


def fixed_input_size(timm_name: str) -> Optional[Tuple[int, int]]:
    """The only ``(H, W)`` a timm peer's network runs at (its attention biases are built for it,
    as EfficientFormer's), or None where any size runs."""
    from timm.models import get_arch_pretrained_cfgs
    cfg = next(iter(get_arch_pretrained_cfgs(timm_name).values()))
    return tuple(cfg.input_size[1:]) if cfg.fixed_input_size else None


def peer_subject(timm_name: str) -> Subject:
    """A timm peer with random weights; its deploy form is timm's reparameterisation."""
    import timm
    from timm.utils.model import reparameterize_model as timm_reparameterize
    if timm_name not in PEERS:
        raise InputError(f'unknown peer {timm_name!r}; choose from {sorted(PEERS)}')
    label, accuracy = PEERS[timm_name]
    model = timm.create_model(timm_name, pretrained=False).eval()
    deploy = timm_reparameterize(copy.deepcopy(model)).eval()
    return Subject(label, 'classifier', dict(train=model, deploy=deploy),
                   dict(train=n_params(model), deploy=n_params(deploy)), accuracy)


def arch_of(model) -> str:
    """The variant name ('ti', ...) of a model's RapidNet backbone, or '' for other models."""
    backbone = getattr(model, 'backbone', None)
    channels = getattr(backbone, 'channels', None)
    arch = getattr(backbone, 'arch', None) or {}  # empty: not a RapidNet
    counts = tuple(tuple(arch.get(k) or ()) for k in ('ir_blocks', 'mldc_blocks'))
    for name, s in ARCH_SETTINGS.items():
        if (tuple(s['channels']) == tuple(channels or ())
                and (tuple(s['ir_blocks']), tuple(s['mldc_blocks'])) == counts):
            return name
    return ''


def subject_for_config(config: str) -> Subject:
    """The :class:`Subject` of a config's model (random weights), named after its RapidNet variant
    ('RapidNet-Ti', ...) and given the paper's top-1 where one is published."""
    from ..config import build_model, load_model_config
    model = build_model(load_model_config(config))
    arch = arch_of(model)
    stem = osp.splitext(osp.basename(config))[0]
    name = f'RapidNet-{arch.upper() if arch != "ti" else "Ti"}' if arch else stem
    subject = config_subject(name, model)
    if subject.what == 'classifier' and arch in RAPIDNET_ACCURACY:
        subject.accuracy = RAPIDNET_ACCURACY[arch]
    elif arch and subject.what != 'classifier':  # tell a detector from a segmentor
        subject.name += f' ({stem})'
    return subject

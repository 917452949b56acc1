"""Hard distillation (DeiT style) for RapidNet: the student's ``dist_head`` learns the argmax of a
frozen teacher on the same (mixed) batch, ``head`` learns the labels.

The teacher is needed for training only. It is built from a timm model name and a checkpoint
path by the first training forward (``loss``), before any weight is updated; ``tools/train.py``
checks the path before it builds the runner. It is not a registered submodule, so it is never in the
student's ``state_dict`` (checkpoints, EMA copies and converters only ever see the student), never
wrapped by DDP, never touched by the optimizer, and a model built for evaluation or export never
needs it.
"""
import os.path as osp
from typing import List, Optional

import torch
import torch.nn as nn
from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from ..errors import RapidNetError

DEFAULT_TEACHER = 'regnety_160'  # RegNetY-16GF, the DeiT teacher
# How to give the teacher's weights as a local file instead of a URL, for error messages.
TEACHER_LOCAL_COPY = 'pass a local copy: --cfg-options model.teacher.checkpoint=/path/to/file'


class MissingTeacherError(RapidNetError, RuntimeError):
    """Distillation training was asked for without teacher weights."""


def teacher_setup_problem(model_cfg: dict) -> Optional[str]:
    """Why a model config cannot start distillation training, or None when it can.

    ``tools/train.py`` calls this before building the runner, so a missing teacher stops the run
    with one line instead of a traceback from inside the train loop.

    Args:
        model_cfg: The ``model`` field of a config.
    """
    if model_cfg.get('type') != 'RapidNetDistiller':
        return None
    if not model_cfg.get('head', {}).get('distillation', True):
        return None
    checkpoint = (model_cfg.get('teacher') or {}).get('checkpoint')
    if not checkpoint:
        return ('distillation training needs the teacher\'s weights: set '
                'model.teacher.checkpoint (e.g. --cfg-options model.teacher.checkpoint='
                '/path/to/regnety_160.pth), or train without distillation '
                '(--cfg-options model.head.distillation=False model.teacher.checkpoint=None)')
    if '://' not in checkpoint and not osp.isfile(checkpoint):
        return (f'teacher checkpoint not found: {checkpoint} (model.teacher.checkpoint); '
                'point it at the teacher\'s weights file')
    return None


def read_teacher_file(path: str) -> dict:
    """A local teacher file's contents: timm's ``.safetensors`` Hub copies, or a torch file read
    weights-only."""
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file
        return load_file(path, device='cpu')
    return torch.load(path, map_location='cpu', weights_only=True)


def load_teacher(arch: str, checkpoint: str, num_classes: int) -> nn.Module:
    """A frozen timm model in eval mode with the weights of ``checkpoint``.

    Args:
        arch: timm model name (``regnety_160`` for the recipe).
        checkpoint: A file holding the teacher's state dict, either directly or under ``model``
            (DeiT's teacher file) or ``state_dict``, loaded with ``weights_only=True``; or a
            ``.safetensors`` file (timm's Hub copies); or the URL of either, read by mmengine's
            ``CheckpointLoader`` (which ``import rapidnet_mm`` teaches the package's cached Hub
            download for the configs' default teacher).
        num_classes: Classes of the student; the teacher must predict the same ones.

    Raises:
        MissingTeacherError: no checkpoint given or the file does not exist.
        ValueError: the file's weights do not fit ``arch`` with ``num_classes`` classes.
    """
    if not checkpoint or ('://' not in checkpoint and not osp.isfile(checkpoint)):
        raise MissingTeacherError(
            f'RapidNetDistiller: no teacher weights ({checkpoint!r}); training a student '
            'against a random teacher is refused. Set model.teacher.checkpoint to the '
            f'{arch} weights, or train without distillation (model.head.distillation=False '
            'model.teacher.checkpoint=None)')
    import timm  # training-only dependency
    teacher = timm.create_model(arch, pretrained=False, num_classes=num_classes)
    if '://' in checkpoint:
        # tools/train.py has downloaded it already; elsewhere (a plain Runner) mmengine's loader
        # fetches it: `import rapidnet_mm` gives it the package's Hub download for the
        # configs' default (model_hub.py), other URLs go to mmengine's own cache
        from mmengine.runner import CheckpointLoader
        state = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
    else:
        state = read_teacher_file(checkpoint)
    for key in ('model', 'state_dict'):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    try:
        teacher.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f'teacher checkpoint {checkpoint} does not fit timm {arch!r} with '
                         f'{num_classes} classes (model.teacher): {err}') from None
    teacher.requires_grad_(False)
    return teacher.eval()


class FrozenTeacher:
    """Holds the teacher outside the module tree.

    Not an ``nn.Module`` attribute, so it stays out of ``state_dict``, ``parameters()`` and
    ``train()``; ``deepcopy`` (mmengine's EMA copies the model) shares it instead of copying
    hundreds of MB of fixed weights.
    """

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def __deepcopy__(self, memo: dict) -> 'FrozenTeacher':
        return self

    @torch.no_grad()
    def hard_labels(self, inputs: torch.Tensor) -> torch.Tensor:
        """The teacher's argmax for each input, computed in eval mode without gradients."""
        self.module.eval()
        param = next(self.module.parameters(), None)
        if param is not None and param.device != inputs.device:
            self.module.to(inputs.device)
        return self.module(inputs).argmax(dim=1)


@MODELS.register_module()
class RapidNetDistiller(ImageClassifier):
    """An mmpretrain ``ImageClassifier`` that trains RapidNet's two heads DeiT style: ``head``
    against the (mixed, smoothed) labels with weight ``1 - alpha``, ``dist_head`` against the
    hard labels of a frozen teacher on the same mixed batch with weight ``alpha`` (the head's
    ``distill_alpha``). Hard distillation takes the teacher's argmax, so the recipe's temperature
    (tau 1.0) has no effect. Prediction is the plain ``ImageClassifier`` path (the head averages
    both logits in eval mode).

    Args:
        teacher: ``dict(arch='regnety_160', checkpoint=PATH)``: a timm model name and its
            weights. The checkpoint is needed only to train; without it, building, evaluating,
            converting and exporting work, and the first training step raises
            MissingTeacherError before any update.
        **kwargs: ``backbone``, ``neck``, ``head``, ``train_cfg``, ``data_preprocessor``,
            ``init_cfg`` of ``ImageClassifier``; the head must be a ``RapidNetClsHead``. With
            ``head.distillation=False`` the model trains on the labels alone (no teacher, no
            ``dist_head``): the recipe's without-distillation ablation.
    """

    def __init__(self, teacher: Optional[dict] = None, **kwargs) -> None:
        super().__init__(**kwargs)
        teacher = dict(teacher or {})
        unknown = set(teacher) - {'arch', 'checkpoint'}
        if unknown:
            raise ValueError(f'RapidNetDistiller teacher takes arch and checkpoint, got unknown '
                             f'{sorted(unknown)}')
        if not hasattr(self.head, 'distillation'):
            raise TypeError('RapidNetDistiller needs a RapidNetClsHead, got '
                            f'{type(self.head).__name__}')
        self.distill: bool = bool(self.head.distillation)
        self.teacher_arch: str = teacher.get('arch', DEFAULT_TEACHER)
        self.teacher_checkpoint: Optional[str] = teacher.get('checkpoint')
        if not self.distill and self.teacher_checkpoint:
            raise ValueError('model.teacher.checkpoint is set but model.head.distillation=False, '
                             'so the teacher would be ignored: set distillation=True to distil, '
                             'or teacher.checkpoint=None to train without a teacher')
        self._teacher: Optional[FrozenTeacher] = None

    @property
    def teacher(self) -> Optional[nn.Module]:
        """The teacher network once training has started, else None."""
        return None if self._teacher is None else self._teacher.module

    def build_teacher(self) -> nn.Module:
        """Build and load the teacher now (on the student's device) unless it exists."""
        if self._teacher is None:
            teacher = load_teacher(self.teacher_arch, self.teacher_checkpoint,
                                   self.head.num_classes)
            device = next(self.parameters()).device
            self._teacher = FrozenTeacher(teacher.to(device))
        return self._teacher.module

    def train(self, mode: bool = True) -> 'RapidNetDistiller':
        super().train(mode)
        if self._teacher is not None:  # not a submodule: keep it in eval explicitly
            self._teacher.module.eval()
        return self

    def loss(self, inputs: torch.Tensor, data_samples: List[DataSample]) -> dict:
        """Label loss on ``head`` plus hard distillation loss on ``dist_head`` (the label loss
        alone when the head was built with ``distillation=False``)."""
        if not self.distill:
            return super().loss(inputs, data_samples)
        self.build_teacher()
        teacher_labels = self._teacher.hard_labels(inputs)
        feats = self.extract_feat(inputs)
        return self.head.loss(feats, data_samples, teacher_labels=teacher_labels)

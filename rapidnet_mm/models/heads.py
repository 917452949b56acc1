"""The original RapidNet classification head (pooling, embedding, ``head`` and ``dist_head``)."""
from typing import List, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models.heads import ClsHead
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from .layers import ConvNorm
from .arch import resolve_arch


@MODELS.register_module()
class RapidNetClsHead(ClsHead):
    """Global average pooling, 1x1 conv to the embedding with BN and GELU, dropout, then two
    linear classifiers: ``head`` (labels) and ``dist_head`` (the teacher's hard labels, DeiT
    style). Training returns both logits; evaluation returns their mean, as the original does.

    Args:
        num_classes: Number of classes.
        arch: A RapidNet arch ('ti', 's', 'm', 'b' or dict): takes ``in_channels`` (last stage)
            and ``embed_dims`` (the table's ``head_width``) from the variant table. Give either
            ``arch`` or both of ``in_channels`` and ``embed_dims``.
        in_channels: Channels of the last backbone stage.
        embed_dims: Embedding width (the variant table's ``head_width``).
        dropout: Dropout before the classifiers (0 in the recipe).
        distillation: Build ``dist_head``. Training it needs teacher labels, supplied by the
            ``RapidNetDistiller`` classifier; set False to train without distillation.
        distill_alpha: Weight of the distillation loss; the label loss gets ``1 - alpha``.
        norm_cfg: Norm layer config of the embedding.
        act_cfg: Activation config of the embedding.
        **kwargs: ``loss``, ``topk``, ``cal_acc``, ``init_cfg`` of mmpretrain's ClsHead.
    """
    # torch.jit.script leaves out mmengine's Python-side flag and the training loss (mmpretrain's
    # losses take **kwargs, which TorchScript cannot compile)
    __jit_unused_properties__ = ['is_init']
    __jit_ignored_attributes__ = ['loss_module']

    def __init__(self,
                 num_classes: int = 1000,
                 arch: Optional[Union[str, dict]] = None,
                 in_channels: Optional[int] = None,
                 embed_dims: Optional[int] = None,
                 dropout: float = 0.,
                 distillation: bool = True,
                 distill_alpha: float = 0.5,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='GELU'),
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if arch is not None:
            if in_channels is not None or embed_dims is not None:
                raise ValueError('RapidNetClsHead: give either arch or in_channels and '
                                 'embed_dims, not both')
            settings = resolve_arch(arch)
            in_channels, embed_dims = settings['channels'][-1], settings['head_width']
        elif in_channels is None or embed_dims is None:
            raise ValueError('RapidNetClsHead needs arch (e.g. arch=\'s\') or both in_channels '
                             'and embed_dims')
        if num_classes <= 0:
            raise ValueError(f'num_classes must be positive, got {num_classes}')
        if not 0 <= distill_alpha <= 1:
            raise ValueError(f'distill_alpha must be in [0, 1], got {distill_alpha}')
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.embed_dims = embed_dims
        self.distillation = distillation
        self.distill_alpha = distill_alpha
        self.embed = ConvNorm(in_channels, embed_dims, 1, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(embed_dims, num_classes)
        self.dist_head = nn.Linear(embed_dims, num_classes) if distillation else None
        self.deploy = False
        self._init_original_weights()

    @torch.no_grad()
    def _init_original_weights(self) -> None:
        # The original's classifiers are 1x1 convs initialised like every conv (Kaiming-normal).
        for m in (self.embed.conv, self.head, self.dist_head):
            if m is not None:
                nn.init.kaiming_normal_(m.weight)
                nn.init.zeros_(m.bias)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fold the head for inference, in place: the embedding's BatchNorm into its conv, and
        ``head`` and ``dist_head`` into one linear layer that holds their mean, whose output is
        exactly the mean of both logits that eval mode returns. Dropout is the identity in eval
        mode and stays. The folded head only predicts; it cannot be trained any more."""
        if self.deploy:
            return
        self.embed.reparameterize()
        if self.dist_head is not None:
            merged = nn.Linear(self.embed_dims, self.num_classes, device=self.head.weight.device,
                               dtype=self.head.weight.dtype)
            merged.weight.copy_((self.head.weight + self.dist_head.weight) / 2)
            merged.bias.copy_((self.head.bias + self.dist_head.bias) / 2)
            self.head, self.dist_head = merged, None
        self.deploy = True

    def pre_logits(self, feats: Tuple[torch.Tensor, ...]) -> torch.Tensor:
        return self.embedding(F.adaptive_avg_pool2d(feats[-1], 1))

    def embedding(self, pooled: torch.Tensor) -> torch.Tensor:
        """The embedding ``(N, embed_dims)`` of globally pooled features ``(N, C, 1, 1)``."""
        return self.dropout(self.embed(pooled)).flatten(1)

    def both_logits(self, feats: Tuple[torch.Tensor, ...]) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(head, dist_head)`` logits, whatever the mode."""
        if self.dist_head is None:
            raise RuntimeError('this RapidNetClsHead was built with distillation=False')
        x = self.pre_logits(feats)
        return self.head(x), self.dist_head(x)

    # Its argument, a tuple of any length, has no TorchScript type: the scripted timm classifier
    # calls embedding() and the classifiers, and forward stays Python.
    @torch.jit.ignore
    def forward(self, feats: Tuple[torch.Tensor, ...]
                ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        if self.dist_head is None:
            return self.head(self.pre_logits(feats))
        cls_score, dist_score = self.both_logits(feats)
        if self.training:
            return cls_score, dist_score
        return (cls_score + dist_score) / 2

    def loss(self, feats: Tuple[torch.Tensor, ...], data_samples: List[DataSample],
             teacher_labels: Optional[torch.Tensor] = None, **kwargs) -> dict:
        """Label loss on ``head``; with distillation, plus cross-entropy of ``dist_head``
        against the teacher's hard labels, weighted ``1 - alpha`` and ``alpha``.

        Args:
            feats: Backbone outputs.
            data_samples: Samples with ``gt_label`` or (after mixup/cutmix) ``gt_score``.
            teacher_labels: The teacher's argmax per sample; required when ``distillation``.
        """
        if self.deploy:
            raise RuntimeError('this RapidNetClsHead was reparameterised for inference and cannot '
                               'be trained; train the head as built')
        if self.dist_head is None:
            if teacher_labels is not None:
                raise ValueError('teacher labels given to a RapidNetClsHead without dist_head; '
                                 'build it with distillation=True')
            return super().loss(feats, data_samples, **kwargs)
        if teacher_labels is None:
            raise ValueError(
                'RapidNetClsHead(distillation=True) trains dist_head on a teacher\'s labels: use '
                "the classifier type='RapidNetDistiller' with a teacher, or set "
                'head.distillation=False to train without distillation')
        cls_score, dist_score = self.both_logits(feats)
        losses = self._get_loss(cls_score, data_samples, **kwargs)
        losses['loss'] = losses['loss'] * (1 - self.distill_alpha)
        losses['loss_distill'] = F.cross_entropy(dist_score, teacher_labels) * self.distill_alpha
        return losses

# Semantic FPN with a RepViT-M1.1 backbone (timm, features_only), ADE20K, 40k iterations, trained
# with the *same* recipe as configs/seg/fpn_rapidnet_m_ade20k.py (AdamW lr 2e-4, weight decay
# 1e-4, poly, 512x512 crops, 32 images in total, aligned test resize), so that the two backbones
# are compared in one harness. This is RapidNet's segmentation recipe, not necessarily RepViT's.
#
# The backbone is mmpretrain's TIMMBackbone around timm.create_model('repvit_m1_1',
# features_only=True): strides 4/8/16/32, channels 64/128/256/512 (timm's feature_info).
# ImageNet weights: `--cfg-options model.backbone.pretrained=True` (timm fetches them; network
# needed). timm builds plain BatchNorm2d, so the backbone's BN is not synchronised across GPUs.
_base_ = '../seg/fpn_rapidnet_m_ade20k.py'

custom_imports = dict(imports=['rapidnet_mm', 'mmpretrain.models'], allow_failed_imports=False)
default_scope = 'mmseg'

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.TIMMBackbone',
        model_name='repvit_m1_1',
        features_only=True,
        pretrained=False,
        out_indices=(0, 1, 2, 3)),
    neck=dict(in_channels=[64, 128, 256, 512]))

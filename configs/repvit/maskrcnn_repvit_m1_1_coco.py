# Mask R-CNN + FPN with a RepViT-M1.1 backbone (timm, features_only), COCO 1x, trained with the
# *same* recipe as configs/det/maskrcnn_rapidnet_s_coco.py (AdamW lr 2e-4, weight decay 0.05,
# 12 epochs, 8 images in total), so that the two backbones are compared in one harness. This is
# RapidNet's detection recipe, not necessarily RepViT's own.
#
# The backbone is mmpretrain's TIMMBackbone around timm.create_model('repvit_m1_1',
# features_only=True): four outputs at strides 4/8/16/32 with 64/128/256/512 channels (as timm
# reports in feature_info). ImageNet weights: `--cfg-options model.backbone.pretrained=True` lets
# timm fetch its default 'repvit_m1_1' weights (network needed); pretrained=False trains from
# timm's initialisation. timm builds plain BatchNorm2d (no SyncBN inside the backbone).
_base_ = '../det/maskrcnn_rapidnet_s_coco.py'

custom_imports = dict(imports=['rapidnet_mm', 'mmpretrain.models'], allow_failed_imports=False)
default_scope = 'mmdet'

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.TIMMBackbone',
        model_name='repvit_m1_1',
        features_only=True,
        pretrained=False,
        out_indices=(0, 1, 2, 3)),
    neck=dict(in_channels=[64, 128, 256, 512]))

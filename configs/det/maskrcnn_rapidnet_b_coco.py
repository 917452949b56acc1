# Mask R-CNN + FPN, RapidNet-B backbone, COCO 1x: the recipe of the authors'
# mask_rcnn_rapidnet_b_fpn_1x_coco.py (published weights: RapidNet_B_Detection.pth, converted
# with tools/model_converters/convert_official.py; see docs/detection.md).
_base_ = './maskrcnn_rapidnet_s_coco.py'

custom_imports = dict(imports=['rapidnet_mm'], allow_failed_imports=False)
default_scope = 'mmdet'

pretrained = 'checkpoints/RapidNet_B.pth'

model = dict(
    backbone=dict(
        arch='b',
        init_cfg=dict(type='RapidNetPretrained', checkpoint=pretrained, prefix='backbone.')),
    # RapidNet-B stage widths (ARCH_SETTINGS['b']['channels'])
    neck=dict(in_channels=[64, 128, 224, 416]))

# Mask R-CNN + FPN, RapidNet-B backbone, COCO 1x: the recipe of the authors'
# mask_rcnn_rapidnet_b_fpn_1x_coco.py. Published weights, evaluated as they are
# (converted in memory):
# python tools/test.py THIS_CONFIG hf://SLDGroup/RapidNet/Detection/RapidNet_B_Detection.pth
# (see docs/detection.md).
_base_ = './maskrcnn_rapidnet_s_coco.py'

custom_imports = dict(imports=['rapidnet_mm'], allow_failed_imports=False)
default_scope = 'mmdet'

pretrained = 'https://huggingface.co/SLDGroup/RapidNet/resolve/main/RapidNet_B.pth'

model = dict(
    backbone=dict(
        arch='b',
        init_cfg=dict(type='RapidNetPretrained', checkpoint=pretrained, prefix='backbone.')),
    # RapidNet-B stage widths (ARCH_SETTINGS['b']['channels'])
    neck=dict(in_channels=[64, 128, 224, 416]))

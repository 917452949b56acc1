# Supplementary Table 6, row 1: RapidNet-Ti with deformable 3x3 convs (dilations 2 and 3, one
# shared offset predictor) in place of the multi-level dilated conv, with distillation.
# Reported: 6.7M params, 76.0% top-1. Recipe and global batch (2048) as rapidnet_ti_in1k.py.
_base_ = '../rapidnet_ti_in1k.py'

model = dict(backbone=dict(mixer_type='deformable'))

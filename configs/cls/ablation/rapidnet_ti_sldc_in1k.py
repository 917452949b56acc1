# Supplementary Table 5, row 1: RapidNet-Ti with a single-level dilated conv (dilation 2), no
# positional encoding, plain FFN, with distillation.
# Reported: 0.5 GMACs, 75.8% top-1 (mean of two runs). Recipe and global batch (2048) as
# rapidnet_ti_in1k.py.
_base_ = '../rapidnet_ti_in1k.py'

model = dict(backbone=dict(mixer_type='sldc', use_pos_enc=False, ffn_type='plain'))

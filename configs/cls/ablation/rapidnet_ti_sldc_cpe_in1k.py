# Supplementary Table 5, row 2: RapidNet-Ti with a single-level dilated conv (dilation 2) and
# the conditional positional encoding, plain FFN, with distillation.
# Reported: 0.5 GMACs, 75.9% top-1 (mean of two runs). Recipe and global batch (2048) as
# rapidnet_ti_in1k.py.
_base_ = '../rapidnet_ti_in1k.py'

model = dict(backbone=dict(mixer_type='sldc', ffn_type='plain'))

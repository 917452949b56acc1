# Supplementary Table 4, row 2: RapidNet-Ti with a pointwise (1x1) conv in place of the
# multi-level dilated conv, no positional encoding, plain FFN, with distillation.
# Reported: 0.4 GMACs, 75.2% top-1. Recipe and global batch (2048) as rapidnet_ti_in1k.py.
_base_ = '../rapidnet_ti_in1k.py'

model = dict(backbone=dict(mixer_type='pointwise', use_pos_enc=False, ffn_type='plain'))

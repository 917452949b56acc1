# Supplementary Table 4, row 3: RapidNet-Ti with a plain 3x3 conv in place of the multi-level
# dilated conv, no positional encoding, plain FFN, with distillation.
# Reported: 0.5 GMACs, 75.7% top-1. Recipe and global batch (2048) as rapidnet_ti_in1k.py.
_base_ = '../rapidnet_ti_in1k.py'

model = dict(backbone=dict(mixer_type='conv3x3', use_pos_enc=False, ffn_type='plain'))

"""An independent, plain-PyTorch RapidNet written from the paper and the authors' code, with the
*authors'* parameter names, for tests only.

It serves two purposes: checkpoints synthesised from it have exactly the layout of the published
files (so the converters are tested on that layout), and its outputs are the reference that a
converted rapidnet_mm model must reproduce. It is deliberately written differently from
``rapidnet_mm.models`` (plain Sequentials, no reparameterisation, no configurability).
"""
import torch
import torch.nn as nn

VARIANTS = {
    'ti': ([(2, 0), (2, 0), (6, 2), (2, 2)], [32, 64, 112, 224], 512),
    's': ([(3, 0), (3, 0), (9, 3), (3, 3)], [32, 64, 112, 224], 512),
    'm': ([(3, 0), (3, 0), (9, 3), (3, 3)], [32, 64, 160, 320], 512),
    'b': ([(3, 0), (3, 0), (9, 3), (3, 3)], [64, 128, 224, 416], 768),
}


def conv_bn(cin, cout, k, s=1, d=1, g=1, bias=True):
    return [nn.Conv2d(cin, cout, k, s, d * (k - 1) // 2, d, g, bias=bias), nn.BatchNorm2d(cout)]


class OrigStem(nn.Module):

    def __init__(self, c):
        super().__init__()
        self.stem = nn.Sequential(*conv_bn(3, c // 2, 3, 2), nn.GELU(), *conv_bn(c // 2, c, 3, 2),
                                  nn.GELU())

    def forward(self, x):
        return self.stem(x)


class OrigDWS(nn.Module):

    def __init__(self, c):
        super().__init__()
        self.pw1, self.norm1 = conv_bn(c, 4 * c, 1)
        self.dw, self.norm2 = conv_bn(4 * c, 4 * c, 3, g=4 * c)
        self.pw2, self.norm3 = conv_bn(4 * c, c, 1)

    def forward(self, x):
        x = nn.functional.gelu(self.norm1(self.pw1(x)))
        x = nn.functional.gelu(self.norm2(self.dw(x)))
        return self.norm3(self.pw2(x))


class OrigIR(nn.Module):

    def __init__(self, c):
        super().__init__()
        self.dws = OrigDWS(c)
        self.layer_scale_1 = nn.Parameter(1e-5 * torch.ones(c, 1, 1))

    def forward(self, x):
        return x + self.layer_scale_1 * self.dws(x)


class OrigCPE(nn.Module):

    def __init__(self, c, folded=False):
        super().__init__()
        self.folded = folded
        conv = nn.Conv2d(c, c, 7, 1, 3, groups=c)
        if folded:
            self.reparam_conv = conv
        else:
            self.pe = conv

    def forward(self, x):
        return self.reparam_conv(x) if self.folded else x + self.pe(x)


class OrigDilated(nn.Module):

    def __init__(self, c):
        super().__init__()
        self.nn = nn.Sequential(*conv_bn(c, c, 3, d=2), nn.GELU())
        self.nn_2 = nn.Sequential(*conv_bn(c, c, 3, d=3), nn.GELU())

    def forward(self, x):
        return self.nn(x) + self.nn_2(x)


class OrigMixer(nn.Module):

    def __init__(self, c, folded_cpe=False):
        super().__init__()
        self.cpe = OrigCPE(c, folded_cpe)
        self.fc1 = nn.Sequential(*conv_bn(c, c, 1))
        self.graph_conv = OrigDilated(c)
        self.fc2 = nn.Sequential(*conv_bn(c, c, 1))

    def forward(self, x):
        return self.fc2(self.graph_conv(self.fc1(self.cpe(x))))


class OrigFFN(nn.Module):

    def __init__(self, c):
        super().__init__()
        self.conv = nn.Sequential()
        self.conv.add_module('conv', nn.Conv2d(c, c, 7, 1, 3, groups=c, bias=False))
        self.norm1 = nn.BatchNorm2d(c)
        self.fc1, self.norm2 = conv_bn(c, 4 * c, 1)
        self.fc2, self.norm3 = conv_bn(4 * c, c, 1)

    def forward(self, x):
        x = self.norm1(self.conv(x))
        x = nn.functional.gelu(self.norm2(self.fc1(x)))
        return self.norm3(self.fc2(x))


class OrigMLDC(nn.Module):

    def __init__(self, c, folded_cpe=False):
        super().__init__()
        self.mixer = OrigMixer(c, folded_cpe)
        self.ffn = OrigFFN(c)
        self.layer_scale_1 = nn.Parameter(1e-5 * torch.ones(c, 1, 1))
        self.layer_scale_2 = nn.Parameter(1e-5 * torch.ones(c, 1, 1))

    def forward(self, x):
        x = x + self.layer_scale_1 * self.mixer(x)
        return x + self.layer_scale_2 * self.ffn(x)


class OrigDownsample(nn.Module):

    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Sequential(*conv_bn(cin, cout, 3, 2))

    def forward(self, x):
        return self.conv(x)


class OrigBackboneMixin:

    def build_backbone(self, variant, folded_cpe):
        blocks, channels, _ = VARIANTS[variant]
        self.stem = OrigStem(channels[0])
        stages = []
        for i, ((n_ir, n_mldc), c) in enumerate(zip(blocks, channels)):
            layers = [OrigDownsample(channels[i - 1], c)] if i else []
            layers += [OrigIR(c) for _ in range(n_ir)]
            layers += [OrigMLDC(c, folded_cpe) for _ in range(n_mldc)]
            stages.append(nn.Sequential(*layers))
        self.backbone = nn.Sequential(*stages)

    def stage_outputs(self, x):
        x = self.stem(x)
        outs = []
        for stage in self.backbone:
            x = stage(x)
            outs.append(x)
        return outs


class OriginalRapidNet(OrigBackboneMixin, nn.Module):
    """The classification model, parameter names as in ``RapidNet_{Ti,S,M,B}.pth``."""

    def __init__(self, variant, num_classes=1000, folded_cpe=False, distillation=True):
        super().__init__()
        self.build_backbone(variant, folded_cpe)
        _, channels, emb = VARIANTS[variant]
        self.prediction = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels[-1], emb, 1),
                                        nn.BatchNorm2d(emb), nn.GELU(), nn.Dropout(0.))
        self.head = nn.Conv2d(emb, num_classes, 1)
        self.distillation = distillation
        if distillation:
            self.dist_head = nn.Conv2d(emb, num_classes, 1)

    def forward(self, x):
        x = self.prediction(self.stage_outputs(x)[-1])
        cls = self.head(x).flatten(1)
        if not self.distillation:
            return cls
        dist = self.dist_head(x).flatten(1)
        return (cls + dist) / 2 if not self.training else (cls, dist)


class OriginalDownstreamBackbone(OrigBackboneMixin, nn.Module):
    """The backbone of the mmdet 2.x / mmseg 0.x models (keys ``stem.stem.*``,
    ``backbone.{i}.{j}.*`` under the detector's ``backbone.``)."""

    def __init__(self, variant, folded_cpe=False):
        super().__init__()
        self.build_backbone(variant, folded_cpe)

    def forward(self, x):
        return tuple(self.stage_outputs(x))


def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter and BN buffer distinct non-trivial values (so a swapped key or a
    missed transform changes the outputs)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if 'layer_scale' in name:
                p.copy_(torch.rand(p.shape, generator=g) * 0.5 + 0.25)
            elif p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=g) * (2 / p[0].numel())**0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.num_batches_tracked.fill_(1000)
    return model

"""The embedded default job: build every RapidNet variant through mmpretrain's, mmdet's and
mmseg's registries (as a config with ``custom_imports`` would) and print its size and features.

Usage: python tools/misc/show_variants.py [--input-size H W]
"""
import argparse
import time

import torch
from mmengine.registry import init_default_scope

import rapidnet_mm
from rapidnet_mm import ARCH_SETTINGS
from rapidnet_mm.cli import add_input_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_input_size(parser, (224, 224), 'input H W (default 224 224)')
    args = parser.parse_args()
    from mmdet.registry import MODELS as DET_MODELS
    from mmpretrain.registry import MODELS as PRE_MODELS
    from mmseg.registry import MODELS as SEG_MODELS
    registries = dict(mmpretrain=PRE_MODELS, mmdet=DET_MODELS, mmseg=SEG_MODELS)
    print(f'rapidnet_mm {rapidnet_mm.__version__}, torch {torch.__version__}; registered: '
          + ', '.join(f'{lib}: {names}' for lib, names in rapidnet_mm.registered.items()))
    x = torch.randn(1, 3, *args.input_size)
    print(f'{"arch":<5}{"library":<12}{"backbone params":>16}  {"features (C x H x W)":<58}'
          f'{"ms":>6}')
    for arch in ARCH_SETTINGS:
        for library, registry in registries.items():
            init_default_scope(library)
            model = registry.build(dict(type='RapidNet', arch=arch)).eval()
            params = sum(p.numel() for p in model.parameters())
            start = time.perf_counter()
            with torch.no_grad():
                feats = model(x)
            ms = (time.perf_counter() - start) * 1e3
            shapes = ', '.join('x'.join(map(str, f.shape[1:])) for f in feats)
            print(f'{arch:<5}{library:<12}{params:>16,}  {shapes:<58}{ms:>6.0f}')


if __name__ == '__main__':
    main()

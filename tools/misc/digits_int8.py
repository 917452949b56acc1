"""Int8 accuracy on a real model: train RapidNet-Ti on scikit-learn's digits, then measure
held-out top-1 in fp32 and int8 under ExecuTorch (XNNPACK), ONNX Runtime and OpenVINO.

Usage: python tools/misc/digits_int8.py [--work-dir work_dirs/digits_int8] [--epochs N]
       [--checkpoint CKPT] [--formats executorch onnx openvino] [--out table.md]

Steps: tools/misc/make_digits.py's folder under WORK_DIR/data (1,438 training and 359 held-out
scans at 32x32), configs/demo/rapidnet_ti_digits.py trained through tools/train.py (skipped with
--checkpoint), then every runtime's fp32 and int8 file (calibrated on 100 training images) run
on the held-out split. Prints (and with --out writes) the table.
"""
import argparse
import glob
import os
import os.path as osp
import subprocess
import sys

from rapidnet_mm.cli import check_output_path, run_tool
from rapidnet_mm.config import config_file, shipped_file

SIZE = (32, 32)


def parse_args(argv=None) -> argparse.Namespace:
    from rapidnet_mm.analysis.int8_accuracy import INT8_FORMATS
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/digits_int8',
                        help='data, training run and table go here')
    parser.add_argument('--epochs', type=int, help='training epochs (default: the config\'s)')
    parser.add_argument('--checkpoint', help='measure these weights instead of training')
    parser.add_argument('--formats', nargs='+', default=list(INT8_FORMATS),
                        choices=INT8_FORMATS, help='runtimes to measure (all by default)')
    parser.add_argument('--out', help='also write the table (markdown) here')
    return parser.parse_args(argv)


def train(config: str, data: str, work_dir: str, epochs) -> str:
    """Train through tools/train.py; returns the last checkpoint."""
    options = [f'{k}={data}/' for k in ('train_dataloader.dataset.data_root',
                                        'val_dataloader.dataset.data_root',
                                        'test_dataloader.dataset.data_root')]
    if epochs:
        options += [f'train_cfg.max_epochs={epochs}', f'train_cfg.val_interval={epochs}',
                    f'default_hooks.checkpoint.interval={epochs}']
    command = [sys.executable, shipped_file('tools', 'train.py'), config, '--work-dir',
               work_dir, '--cfg-options'] + options
    print('training:', ' '.join(command), flush=True)
    # OpenMP threads that spin while waiting made each step 10x slower on a shared 2-core CPU
    env = dict(os.environ)
    env.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    subprocess.run(command, check=True, env=env)
    return max(glob.glob(osp.join(work_dir, 'epoch_*.pth')), key=osp.getmtime)


def main(argv=None) -> int:
    args = parse_args(argv)

    def body() -> None:
        check_output_path(args.work_dir, '--work-dir', folder=True)
        if args.out:
            check_output_path(args.out, '--out')
        from rapidnet_mm.analysis.int8_accuracy import (format_accuracy_table,
                                                        measure_int8_accuracy)
        from rapidnet_mm.config import build_model, load_model_config
        from rapidnet_mm.datasets.digits import make_digits_folder
        from rapidnet_mm.deploy.normalization import input_normalization
        config = config_file('demo', 'rapidnet_ti_digits.py')
        data = osp.join(args.work_dir, 'data')
        counts = make_digits_folder(data, SIZE[0])
        print(f'digits: {counts["train"]} training and {counts["val"]} held-out images in {data}')
        checkpoint = args.checkpoint or train(config, data, osp.join(args.work_dir, 'train'),
                                              args.epochs)
        cfg = load_model_config(config)
        model = build_model(cfg, checkpoint).eval()
        reference, rows = measure_int8_accuracy(model, input_normalization(cfg),
                                                osp.join(data, 'val'), SIZE,
                                                osp.join(data, 'train'), args.formats)
        table = format_accuracy_table(reference, rows, counts['val'])
        print(f'\nweights: {checkpoint}\n{table}')
        if args.out:
            with open(args.out, 'w') as f:
                f.write(table + '\n')
            print(f'wrote {args.out}')
    return run_tool(body)


if __name__ == '__main__':
    sys.exit(main())

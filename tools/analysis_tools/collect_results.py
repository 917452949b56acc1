"""Final metrics of finished runs next to the paper's figures, as model-zoo tables.

Reads the metrics mmengine wrote into each WORK_DIR (by tools/train.py or tools/test.py), takes the
newest evaluation, and puts it beside the figure of that config's entry in model-index.yml.

Usage: python tools/analysis_tools/collect_results.py WORK_DIR [WORK_DIR ...] [--out results.md]
"""
import argparse
import sys
from typing import List

from rapidnet_mm.analysis.results import Row, collect, format_tables, load_model_index
from rapidnet_mm.cli import check_output_path, run_tool


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('work_dirs', nargs='+', metavar='WORK_DIR',
                        help='work dirs of finished runs (tools/train.py or tools/test.py)')
    parser.add_argument('--out', help='also write the tables (markdown) to this file')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)

    def body() -> None:
        if args.out:
            check_output_path(args.out, '--out')
        models = load_model_index()
        rows: List[Row] = []
        for work_dir in args.work_dirs:
            rows += collect(work_dir, models)
        text = format_tables(rows)
        print(text)
        if args.out:
            with open(args.out, 'w') as f:
                f.write(text + '\n')
            print(f'wrote {args.out}')
    return run_tool(body)


if __name__ == '__main__':
    sys.exit(main())

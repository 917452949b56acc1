#!/usr/bin/env bash
# Train on GPUS processes per node through torchrun and tools/train.py --launcher pytorch.
# Environment: NNODES (1), NODE_RANK (0), MASTER_ADDR (127.0.0.1), PORT (29500), PYTHON
# (see tools/launch_common.sh). Extra arguments go to tools/train.py.
set -e
source "$(dirname "$0")/launch_common.sh"
usage_unless 2 $# "$0 CONFIG GPUS [tools/train.py arguments...]"
torchrun_tool "$2" train.py "$1" "${@:3}"

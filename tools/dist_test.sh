#!/usr/bin/env bash
# Evaluate a checkpoint on GPUS processes per node through torchrun and tools/test.py --launcher
# pytorch. Environment: NNODES (1), NODE_RANK (0), MASTER_ADDR (127.0.0.1), PORT (29500), PYTHON
# (see tools/launch_common.sh). Extra arguments go to tools/test.py.
set -e
source "$(dirname "$0")/launch_common.sh"
usage_unless 3 $# "$0 CONFIG CHECKPOINT GPUS [tools/test.py arguments...]"
torchrun_tool "$3" test.py "$1" "$2" "${@:4}"

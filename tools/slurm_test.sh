#!/usr/bin/env bash
# Evaluate a checkpoint through Slurm: srun starts GPUS tasks (GPUS_PER_NODE per node), each
# running tools/test.py --launcher slurm. Environment: GPUS (8), GPUS_PER_NODE (8),
# CPUS_PER_TASK (5), SRUN_ARGS (extra srun options), PYTHON (see tools/launch_common.sh). Extra
# arguments go to tools/test.py.
set -e
source "$(dirname "$0")/launch_common.sh"
usage_unless 4 $# "$0 PARTITION JOB_NAME CONFIG CHECKPOINT [tools/test.py arguments...]"
PARTITION=$1
JOB_NAME=$2
srun_tool test.py "$3" "$4" "${@:5}"

# Sourced by tools/dist_*.sh and tools/slurm_*.sh (not run on its own): the interpreter and the
# import path the launch scripts share.
#
# The interpreter: $PYTHON if set; else the venv tools/setup/setup_env.sh made ($RAPIDNET_MM_VENV,
# default <repo>/.venv), so that the README set-up works without activating it; else `python`
# on PATH (an activated environment, or an installed rapidnet_mm).
TOOLS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(dirname "$TOOLS_DIR")"
if [ -z "${PYTHON:-}" ]; then
    VENV_PYTHON="${RAPIDNET_MM_VENV:-$REPO_DIR/.venv}/bin/python"
    if [ -x "$VENV_PYTHON" ]; then PYTHON="$VENV_PYTHON"; else PYTHON=python; fi
fi
# a clone that was not pip-installed still imports rapidnet_mm
export PYTHONPATH="$REPO_DIR${PYTHONPATH:+:$PYTHONPATH}"

# usage_unless MIN_ARGS NUM_ARGS USAGE: print the usage line and exit 2 when arguments are missing.
usage_unless() {
    if [ "$2" -lt "$1" ]; then
        echo "usage: $3" >&2
        exit 2
    fi
}

# positive_int NAME VALUE: stop with one error line unless VALUE is a positive integer.
positive_int() {
    case "$2" in
        ''|*[!0-9]*|0) echo "error: $1 must be a positive integer, got '$2'" >&2; exit 2 ;;
    esac
}

# srun_tool TOOL ARGS...: run tools/TOOL on GPUS Slurm tasks (GPUS_PER_NODE per node) with
# --launcher slurm; the srun options are those of mmdet's slurm scripts.
srun_tool() {
    local tool=$1
    shift
    local gpus=${GPUS:-8} gpus_per_node=${GPUS_PER_NODE:-8} cpus=${CPUS_PER_TASK:-5}
    positive_int GPUS "$gpus"
    positive_int GPUS_PER_NODE "$gpus_per_node"
    positive_int CPUS_PER_TASK "$cpus"
    # SRUN_ARGS is split into words on purpose: it holds several srun options
    # shellcheck disable=SC2086
    exec srun -p "$PARTITION" \
        --job-name="$JOB_NAME" \
        --gres=gpu:"$gpus_per_node" \
        --ntasks="$gpus" \
        --ntasks-per-node="$gpus_per_node" \
        --cpus-per-task="$cpus" \
        --kill-on-bad-exit=1 \
        ${SRUN_ARGS:-} \
        "$PYTHON" -u "$TOOLS_DIR/$tool" "$@" --launcher slurm
}

# torchrun_tool GPUS TOOL ARGS...: run tools/TOOL on GPUS processes of this node through torchrun
# with --launcher pytorch; NNODES, NODE_RANK, MASTER_ADDR and PORT as in mmdet's dist scripts.
torchrun_tool() {
    local gpus=$1 tool=$2
    shift 2
    positive_int GPUS "$gpus"
    exec "$PYTHON" -m torch.distributed.run \
        --nnodes="${NNODES:-1}" \
        --node_rank="${NODE_RANK:-0}" \
        --master_addr="${MASTER_ADDR:-127.0.0.1}" \
        --master_port="${PORT:-29500}" \
        --nproc_per_node="$gpus" \
        "$TOOLS_DIR/$tool" "$@" --launcher pytorch
}

#!/usr/bin/env bash
# N local CPU processes forming one JAX program (coordinator on 127.0.0.1): exercises the
# multi-process code paths (jax.distributed, per-process data shards, process-local batches,
# orbax multi-host saves) on a laptop.
#
#   launch/local_multiprocess.sh 2 configs/tiny/lm.py /tmp/mp_run [--config.x=y ...]
#
# Each process gets JAX_COORDINATOR_ADDRESS=127.0.0.1:$PORT, JAX_NUM_PROCESSES=N and its own
# JAX_PROCESS_ID; train.py then calls jax.distributed.initialize() with them. DEVICES_PER_PROC
# fake CPU devices per process (default 1) give N x DEVICES_PER_PROC devices in all: the config's
# mesh must multiply to that (the tiny configs use data=-1). data.batch_size must be divisible
# by N. Logs: WORKDIR/process_<i>.log. Environment: PORT (default 12355), PYTHON, DEVICES_PER_PROC.
set -euo pipefail

N=${1:?usage: launch/local_multiprocess.sh N CONFIG WORKDIR [--config.x=y ...]}
CONFIG=${2:?config file}
WORKDIR=${3:?workdir}
shift 3
PORT=${PORT:-12355}
DEVICES_PER_PROC=${DEVICES_PER_PROC:-1}
REPO_DIR=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-"$REPO_DIR/.venv/bin/python"}
mkdir -p "$WORKDIR"

pids=()
for ((i = 0; i < N; i++)); do
  JAX_PLATFORMS=cpu \
  XLA_FLAGS="--xla_force_host_platform_device_count=$DEVICES_PER_PROC" \
  JAX_COORDINATOR_ADDRESS="127.0.0.1:$PORT" JAX_NUM_PROCESSES="$N" JAX_PROCESS_ID="$i" \
    "$PYTHON" -m biocoach_jax.train --config="$CONFIG" --workdir="$WORKDIR" \
      --config.train.progress=False "$@" >"$WORKDIR/process_$i.log" 2>&1 &
  pids+=($!)
  echo "process $i: pid ${pids[-1]}, log $WORKDIR/process_$i.log"
done

# wait for all; the first failure is reported (the others stop when the coordinator goes away)
status=0
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then
    echo "process $i failed, see $WORKDIR/process_$i.log" >&2
    status=1
  fi
done
exit $status

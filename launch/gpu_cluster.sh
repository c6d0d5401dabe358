#!/usr/bin/env bash
# SLURM batch script: one process per GPU on every node, all in one JAX program.
#
#   sbatch --nodes=2 launch/gpu_cluster.sh configs/full.py [--config.x=y ...]
#   (WORKDIR=/shared/runs/biocoach sbatch ... ; defaults below)
#
# srun starts SLURM_NTASKS = nodes x gpus-per-node processes; each sees its own GPU
# (--gpus-per-task=1). train.py calls jax.distributed.initialize(), which reads the SLURM
# variables (SLURM_NTASKS, SLURM_PROCID, SLURM_STEP_NODELIST, ...) for the coordinator address,
# the process count and this process's id. The mesh in the config must multiply to the total
# GPU count (or use -1 on one axis, e.g. --config.mesh.fsdp=-1).
#
# Environment: WORKDIR (run directory on a shared filesystem, default ./runs/$SLURM_JOB_ID),
# REPO_DIR (checkout, default the submit directory), PYTHON (default $REPO_DIR/.venv/bin/python),
# and the data / weight paths of configs/full.py (LLAMA2_7B, STREAMVLM_RUN, QEVD_ROOT, ...),
# which srun passes through to the tasks.
#SBATCH --job-name=biocoach
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=8
#SBATCH --gpus-per-task=1
#SBATCH --cpus-per-task=12
#SBATCH --time=24:00:00
#SBATCH --output=biocoach-%j.out
set -euo pipefail

CONFIG=${1:?usage: sbatch launch/gpu_cluster.sh CONFIG [--config.x=y ...]}
shift
REPO_DIR=${REPO_DIR:-${SLURM_SUBMIT_DIR:-$PWD}}
PYTHON=${PYTHON:-"$REPO_DIR/.venv/bin/python"}
WORKDIR=${WORKDIR:-"$REPO_DIR/runs/${SLURM_JOB_ID:-local}"}
# each process uses only its GPU; let XLA take most of its memory
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.9}

cd "$REPO_DIR"
echo "job ${SLURM_JOB_ID:-?}: ${SLURM_NTASKS:-?} processes on ${SLURM_JOB_NODELIST:-?}; workdir $WORKDIR"
srun --kill-on-bad-exit=1 "$PYTHON" -m biocoach_jax.train --config="$CONFIG" --workdir="$WORKDIR" "$@"

#!/usr/bin/env bash
# Run one training config on every worker of a Cloud TPU VM pod slice.
#
#   TPU_NAME=my-v5e-32 ZONE=us-west4-a PROJECT=my-proj WORKDIR=gs://bucket/runs/biocoach \
#     launch/tpu_pod.sh configs/full.py [--config.train.steps=20000 ...]
#
# Environment:
#   TPU_NAME   (required) name of the TPU VM (pod slice)
#   ZONE       (required) its zone
#   PROJECT    GCP project (default: gcloud's configured project)
#   WORKDIR    (required) run directory; on a pod use gs://... (orbax writes it from all hosts)
#   REPO_DIR   checkout of this repository on every worker (default ~/biocoach-jax; copy it
#              there first, e.g. with `gcloud compute tpus tpu-vm scp --worker=all`)
#   PYTHON     interpreter on the workers (default: $REPO_DIR/.venv/bin/python)
#   LLAMA2_7B, STREAMVLM_RUN, QEVD_ROOT, BIOCOACH_TOKENIZER, BIOCOACH_VISION_CNN
#              forwarded to the workers: the paths configs/full.py reads
# Every worker runs the same command; jax.distributed.initialize() finds the other hosts
# through the TPU metadata (train.py calls it when TPU_WORKER_HOSTNAMES is set, as on pods).
set -euo pipefail

CONFIG=${1:?usage: launch/tpu_pod.sh CONFIG [--config.x=y ...]}
shift
: "${TPU_NAME:?set TPU_NAME}" "${ZONE:?set ZONE}" "${WORKDIR:?set WORKDIR}"
REPO_DIR=${REPO_DIR:-'~/biocoach-jax'}
PYTHON=${PYTHON:-"$REPO_DIR/.venv/bin/python"}
PROJECT_FLAG=()
if [[ -n "${PROJECT:-}" ]]; then PROJECT_FLAG=(--project "$PROJECT"); fi

# forward the path variables that are set here (quoted for the remote shell)
FORWARD=""
for v in LLAMA2_7B STREAMVLM_RUN QEVD_ROOT BIOCOACH_TOKENIZER BIOCOACH_VISION_CNN; do
  if [[ -n "${!v:-}" ]]; then FORWARD+="export $v=$(printf %q "${!v}"); "; fi
done
EXTRA=""
for a in "$@"; do EXTRA+=" $(printf %q "$a")"; done

CMD="${FORWARD}cd $REPO_DIR && $PYTHON -m biocoach_jax.train --config=$(printf %q "$CONFIG") \
--workdir=$(printf %q "$WORKDIR")${EXTRA}"
echo "on all workers of $TPU_NAME: $CMD"
exec gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone "$ZONE" "${PROJECT_FLAG[@]}" \
  --worker=all --command "$CMD"

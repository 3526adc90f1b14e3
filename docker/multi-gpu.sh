#!/usr/bin/env bash
# One f5-worker per GPU in one container. Worker i sees only GPU i (CUDA_VISIBLE_DEVICES) and serves /healthz,
# /readyz and /metrics on F5_WORKER_HEALTH_PORT + i (8080, 8081, ...). SIGTERM/SIGINT are forwarded to every
# worker; each finishes or hands back its job within its own F5_WORKER_SHUTDOWN_GRACE_S, and the launcher exits
# when all have. A worker that fails (non-zero exit) stops the others, and the launcher exits with its status so
# the platform restarts the whole container; a worker that ends cleanly (burst mode) just ends.
#
#   f5-worker-multi-gpu                       # f5-worker run on every GPU nvidia-smi lists
#   F5_WORKER_GPUS=0,2 f5-worker-multi-gpu    # chosen GPUs (indices or UUIDs); also read from CUDA_VISIBLE_DEVICES
#   f5-worker-multi-gpu python -m consumer run   # another worker command
#
# The image's HEALTHCHECK probes worker 0's port only: the exit-on-failure rule above covers the others.
set -euo pipefail

log() { printf '{"event": "multi_gpu_%s", %s}\n' "$1" "$2" >&2; }

if [ "$#" -gt 0 ]; then cmd=("$@"); else cmd=(f5-worker run); fi
base_port=${F5_WORKER_HEALTH_PORT:-8080}

if [ -n "${F5_WORKER_GPUS:-}" ]; then
  IFS=, read -r -a gpus <<< "$F5_WORKER_GPUS"
elif [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then
  IFS=, read -r -a gpus <<< "$CUDA_VISIBLE_DEVICES"
elif command -v nvidia-smi > /dev/null 2>&1; then
  mapfile -t gpus < <(nvidia-smi --query-gpu=index --format=csv,noheader)
else
  echo "multi-gpu: no GPUs found (set F5_WORKER_GPUS=0,1,... or CUDA_VISIBLE_DEVICES, or install nvidia-smi)" >&2
  exit 2
fi
if [ "${#gpus[@]}" -eq 0 ]; then
  echo "multi-gpu: the GPU list is empty" >&2
  exit 2
fi

pids=()
stopping=0
stop_all() {
  stopping=1
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2> /dev/null || true; done
}
trap 'log signal "\"signal\": \"TERM\""; stop_all' TERM
trap 'log signal "\"signal\": \"INT\""; stop_all' INT

for i in "${!gpus[@]}"; do
  gpu=${gpus[$i]// /}
  port=$((base_port + i))
  CUDA_VISIBLE_DEVICES=$gpu F5_WORKER_HEALTH_PORT=$port "${cmd[@]}" &
  pids+=("$!")
  log started "\"gpu\": \"$gpu\", \"health_port\": $port, \"pid\": $!"
done

status=0
remaining=${#pids[@]}
while [ "$remaining" -gt 0 ]; do
  exited=""
  rc=0
  wait -n -p exited || rc=$?
  if [ -z "${exited:-}" ]; then
    continue # a trapped signal interrupted the wait; the trap has forwarded it
  fi
  remaining=$((remaining - 1))
  log exited "\"pid\": $exited, \"status\": $rc"
  if [ "$rc" -ne 0 ] && [ "$status" -eq 0 ]; then
    status=$rc
    [ "$stopping" -eq 1 ] || stop_all
  fi
done
exit "$status"

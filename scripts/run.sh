#!/usr/bin/env bash
# What `make run` starts: a short tour of the offline tools, then `openstation start` in the
# foreground — the control plane (https://0.0.0.0:32206) and a local agent in one process, with
# the data dir's default (/var/lib/openstation as root, ~/.local/share/openstation otherwise).
# Extra arguments go to `openstation start` (e.g. --gpu-inventory examples/nodes/2x-a100-40g.json
# on a machine without GPUs, --data-dir DIR, --port N). Ctrl-C stops it; engine instances keep
# running and the next start adopts them.
set -euo pipefail
bin=${1:-build/openstation}
shift || true
"$bin" --version
echo
"$bin" models catalog
cat <<TXT

Estimate a model on a node:
  $bin estimate --model deepseek-r1-distill-qwen-7b --node examples/nodes/1x-rtx4090.json
  $bin estimate --model deepseek-r1-distill-qwen-32b --node examples/nodes/2x-a100-40g.json --tp 2 \\
      --args "--max-model-len 32768 --kv-cache-dtype fp8"

Plan a deployment (engine, TP/PP, fixes, per-node commands):
  $bin plan --model deepseek-r1 --cluster examples/clusters/2x8-h100.json

Now starting the control plane and a local agent (docs/getting-started.md: log in, deploy):
  $bin start $*
TXT
echo
exec "$bin" --log-level info start "$@"

#!/usr/bin/env bash
# What `make run` starts. Until the server of issue [4] exists this shows the model catalog and
# how to size a deployment with the estimator and the planner.
set -euo pipefail
bin=${1:-build/openstation}
"$bin" --version
echo
"$bin" models catalog
cat <<TXT

Estimate a model on a node:
  $bin estimate --model deepseek-r1-distill-qwen-7b --node examples/nodes/1x-rtx4090.json
  $bin estimate --model deepseek-r1-distill-qwen-32b --node examples/nodes/2x-a100-40g.json --tp 2 \\
      --args "--max-model-len 32768 --kv-cache-dtype fp8"
  $bin estimate --model-path /path/to/model-dir --node examples/nodes/8x-h100-80g.json --json

Plan a deployment (engine, TP/PP, fixes, per-node commands):
  $bin plan --model deepseek-r1-distill-qwen-7b --cluster examples/nodes/4x-t4.json
  $bin plan --model deepseek-r1 --cluster examples/clusters/2x8-h100.json

This machine as a node:
  $bin agent inventory
TXT

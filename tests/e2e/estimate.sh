#!/usr/bin/env bash
# e2e: `openstation models catalog` and `openstation estimate` through the real binary.
# $1 = the openstation binary, $2 = the source dir. Exits non-zero on the first failure.
set -u
bin=$1
src=$2
nodes=$src/examples/nodes
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OPENSTATION_DATA_DIR=$work/data  # no user catalog from this machine

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# run EXPECTED_RC CMD...: runs the binary, keeps stdout/stderr in $work/out and $work/err.
run() {
  local want=$1
  shift
  "$bin" "$@" >"$work/out" 2>"$work/err"
  local rc=$?
  [ "$rc" -eq "$want" ] || fail "openstation $* exited $rc, expected $want; stderr: $(cat "$work/err")"
}

has() {
  local f=${2:-out}
  grep -qF -- "$1" "$work/$f" || fail "expected '$1' in $f: $(cat "$work/$f")"
}

# Catalog: the ten FAQ rows with their seed minimum GPU memory.
run 0 models catalog
for row in "deepseek-r1 .*807 GB" "deepseek-r1-bf16 .*1612 GB" "deepseek-v3 .*807 GB" \
  "deepseek-v3-bf16 .*1612 GB" "deepseek-r1-distill-llama-70b .*170 GB" \
  "deepseek-r1-distill-llama-8b .*21 GB" "deepseek-r1-distill-qwen-32b .*79 GB" \
  "deepseek-r1-distill-qwen-14b .*36 GB" "deepseek-r1-distill-qwen-7b .*19 GB" \
  "deepseek-r1-distill-qwen-1.5b .*6 GB"; do
  grep -q -- "^$row" "$work/out" || fail "catalog row '$row' missing: $(cat "$work/out")"
done
run 0 models catalog --json
[ "$(grep -c '"min_vram_gb"' "$work/out")" -eq 10 ] || fail "catalog --json should list 10 cards"

# A user card in the data dir.
mkdir -p "$OPENSTATION_DATA_DIR"
cat >"$OPENSTATION_DATA_DIR/catalog.json" <<'JSON'
{"models": [{"id": "my-qwen-3b", "params_b": 3, "dtype": "bfloat16", "hf_repo": "me/my-qwen-3b",
  "arch": {"model_type": "qwen2", "hidden_size": 2048, "num_layers": 36, "num_attention_heads": 16,
           "num_kv_heads": 2, "vocab_size": 151936, "max_position_embeddings": 32768,
           "intermediate_size": 11008}}]}
JSON
run 0 models catalog
has "my-qwen-3b *"
run 0 estimate --model my-qwen-3b --node "$nodes/1x-rtx4090.json"
has "Verdict:    FITS"

# Fits with a reduced context; does not fit with the model's full context (exit 1, full report).
run 1 estimate --model deepseek-r1-distill-qwen-7b --node "$nodes/1x-rtx4090.json"
has "DOES NOT FIT"
has "estimate.kv_cache_too_small"
has "but --max-model-len is 131072"
run 0 estimate --model deepseek-r1-distill-qwen-7b --node "$nodes/1x-rtx4090.json" \
  --args "--max-model-len 32768 --gpu-memory-utilization 0.9"
has "Verdict:    FITS"
run 0 estimate --model deepseek-r1-distill-qwen-7b --node "$nodes/1x-rtx4090.json" \
  --args "--max-model-len 32768" --json
has '"fits": true'
has '"kv_bytes_per_token": 57344'

# Does not fit: 32B on one RTX 4090; R1 FP8 on 8×H100 (but the MLA KV bytes are right).
run 1 estimate --model deepseek-r1-distill-qwen-32b --node "$nodes/1x-rtx4090.json" --json
has '"code": "estimate.weights_exceed_budget"'
run 1 estimate --model deepseek-r1 --node "$nodes/8x-h100-80g.json"
has "70,272 bytes per GPU"
has "more GPUs needed: 16"

# Other engines and versions.
run 0 estimate --model deepseek-r1-distill-llama-70b --node "$nodes/8x-a100-80g.json" --engine sglang --json
has '"engine": "sglang"'
run 0 estimate --model deepseek-r1-distill-llama-70b --node "$nodes/8x-a100-80g.json" \
  --engine-version 0.7.3 --json
has '"engine_version": "0.7.3"'
has "--gpu-memory-utilization 0.9 is the default of vLLM 0.7.3"
run 0 estimate --model deepseek-r1-distill-qwen-1.5b --node "$nodes/cpu-only.json" --json
has '"engine": "vllm-cpu"'
has '"block_size": 128'

# No node: seed figures and KV bytes per token only.
run 0 estimate --model deepseek-r1-distill-qwen-14b
has "196,608 bytes"
has "no node given"

# Bad input: exit 2 with a clear message.
run 2 estimate --model deepseek-r1-distill-qwen-7
has "did you mean 'deepseek-r1-distill-qwen-7b'" err
run 2 estimate --model deepseek-r1-distill-qwen-7b --node "$nodes/8x-h100-80g.json" --tp 3
has "Total number of attention heads (28) must be divisible by tensor parallel size (3)." err
run 2 estimate --model deepseek-r1-distill-qwen-7b --node "$nodes/1x-rtx4090.json" \
  --args "--gpu-memory-utilization 1.5"
run 2 estimate --model deepseek-r1-distill-qwen-7b --node "$work/absent.json"
run 2 estimate --model-path "$work/no-such-dir"
echo '{"name": "x", "type": "gpu", "cpu_cores": 1}' >"$work/bad-node.json"
run 2 estimate --model deepseek-r1-distill-qwen-7b --node "$work/bad-node.json"
has "memory_mib is required" err

echo "estimate e2e: ok"

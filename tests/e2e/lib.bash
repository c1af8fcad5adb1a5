# Shared helpers of the server e2e scripts (start.sh, netns.sh); sourced, not run.
# Needs: $work (a fresh temp dir), curl, jq.

fail() {
  echo "FAIL: $*" >&2
  for log in "$work"/*.log; do
    [ -f "$log" ] || continue
    echo "---- last lines of $log ----" >&2
    tail -n 40 "$log" >&2
  done
  exit 1
}

# free_port [TAKEN...]: a TCP port in 20000-31999 that nothing listens on now (bash's /dev/tcp
# refuses to connect) and that is none of TAKEN: the ports a script chose before and whose servers
# are not up yet. Each $(free_port) runs in a subshell, so two calls can draw the same number.
free_port() {
  local p i t
  for i in $(seq 1 200); do
    p=$((20000 + RANDOM % 12000))
    for t in "$@"; do
      [ "$t" != "$p" ] || continue 2
    done
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  fail "no free port found"
}

# wait_for DESCRIPTION SECONDS CMD...: runs CMD every half second until it succeeds.
wait_for() {
  local what=$1 secs=$2
  shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || fail "timed out after ${secs}s waiting for: $what"
    sleep 0.5
  done
}

# api METHOD PATH [JSON]: calls $api_url$PATH with $token; sets $status, body in $work/body.
api() {
  local method=$1 path=$2 data=${3-}
  local args=(-sk -o "$work/body" -w '%{http_code}' -X "$method" -H "Accept: application/json")
  [ -n "${token-}" ] && args+=(-H "Authorization: Bearer $token")
  [ -n "$data" ] && args+=(-H "Content-Type: application/json" --data "$data")
  status=$(curl "${args[@]}" "$api_url$path" 2>"$work/curl.err") || status=000
}

# expect CODE METHOD PATH [JSON]: api, failing unless the status is CODE.
expect() {
  local want=$1
  shift
  api "$@"
  [ "$status" = "$want" ] || fail "$1 $2 answered $status, expected $want: $(cat "$work/body" 2>/dev/null) $(cat "$work/curl.err")"
}

# jbody FILTER: jq over the last body.
jbody() { jq -r "$1" "$work/body"; }

# kill_tree_matching TEXT: kills (TERM, then KILL) every process whose command line holds TEXT.
kill_matching() {
  local text=$1 pid pids=()
  for pid in /proc/[0-9]*; do
    pid=${pid#/proc/}
    [ "$pid" = "$$" ] && continue
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$text"; then pids+=("$pid"); fi
  done
  [ ${#pids[@]} -eq 0 ] && return 0
  kill -TERM "${pids[@]}" 2>/dev/null
  sleep 1
  kill -KILL "${pids[@]}" 2>/dev/null
  return 0
}

# kill_groups PGID...: TERM to each process group (what `setsid CMD &` started, and its children).
kill_groups() {
  local g
  for g in "$@"; do kill -TERM -- "-$g" 2>/dev/null; done
  return 0
}

# make_distill_dir DIR [LAYERS]: a DeepSeek-R1-Distill-Qwen-1.5B look-alike: its real config.json
# and a safetensors file whose header lists every tensor at full size over sparse (unwritten)
# data. With LAYERS: a smaller relative (that many layers, tied embeddings, 32K context) for
# tests that move the bytes.
make_distill_dir() {
  python3 - "$1" "${2:-}" <<'PY'
import json, os, struct, sys
d = sys.argv[1]
small = sys.argv[2] != ""
layers = int(sys.argv[2]) if small else 28
os.makedirs(d, exist_ok=True)
cfg = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 1536,
       "num_hidden_layers": layers, "num_attention_heads": 12, "num_key_value_heads": 2,
       "vocab_size": 151936, "max_position_embeddings": 32768 if small else 131072,
       "intermediate_size": 8960, "tie_word_embeddings": small, "torch_dtype": "bfloat16",
       "rms_norm_eps": 1e-6, "rope_theta": 10000.0}
json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
h, inter, vocab, kv = 1536, 8960, 151936, 2 * 128
tensors = [("model.embed_tokens.weight", [vocab, h])]
for l in range(layers):
    p = "model.layers.%d." % l
    tensors += [(p + "input_layernorm.weight", [h]), (p + "post_attention_layernorm.weight", [h]),
                (p + "self_attn.q_proj.weight", [h, h]), (p + "self_attn.q_proj.bias", [h]),
                (p + "self_attn.k_proj.weight", [kv, h]), (p + "self_attn.k_proj.bias", [kv]),
                (p + "self_attn.v_proj.weight", [kv, h]), (p + "self_attn.v_proj.bias", [kv]),
                (p + "self_attn.o_proj.weight", [h, h]),
                (p + "mlp.gate_proj.weight", [inter, h]), (p + "mlp.up_proj.weight", [inter, h]),
                (p + "mlp.down_proj.weight", [h, inter])]
tensors += [("model.norm.weight", [h])] + ([] if small else [("lm_head.weight", [vocab, h])])
header, off = {}, 0
for name, shape in tensors:
    n = 2
    for s in shape: n *= s
    header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [off, off + n]}
    off += n
text = json.dumps(header)
text += " " * ((8 - (8 + len(text)) % 8) % 8)
with open(os.path.join(d, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(text)))
    f.write(text.encode())
    f.truncate(8 + len(text) + off)
PY
}

# first_admin_login DATA_DIR NEW_PASSWORD: logs in as the first admin with the password the
# server wrote to DATA_DIR/initial-admin-password, changes it to NEW_PASSWORD and logs in again;
# sets $token.
first_admin_login() {
  local dir=$1 new=$2 initial
  [ -f "$dir/initial-admin-password" ] || fail "no $dir/initial-admin-password"
  initial=$(head -n 1 "$dir/initial-admin-password" | tr -d '[:space:]')
  token=
  expect 200 POST /api/v1/auth/login "{\"username\":\"admin\",\"password\":\"$initial\"}"
  token=$(jbody .token)
  expect 204 POST /api/v1/auth/password "{\"current_password\":\"$initial\",\"new_password\":\"$new\"}"
  expect 200 POST /api/v1/auth/login "{\"username\":\"admin\",\"password\":\"$new\"}"
  token=$(jbody .token)
}

# stand_in_engine_sets INVENTORY: sets the array $stand_in_sets to the --set arguments that make
# the stand-in engine play vLLM and SGLang through $work/bin/vllm and $work/bin/fake-engine (links
# made by the caller) on the simulated node INVENTORY; for `start` and `agent` alike.
stand_in_engine_sets() {
  local inv=$1
  stand_in_sets=(
    --set "engines.vllm.command=$work/bin/vllm"
    --set "engines.vllm.env.OPENSTATION_FAKE_GPU_INVENTORY=$inv"
    --set "engines.vllm.env.FAKE_ENGINE_STARTUP_MS=300"
    --set "engines.sglang.command=$work/bin/fake-engine sglang"
    --set "engines.sglang.env.OPENSTATION_FAKE_GPU_INVENTORY=$inv"
    --set "engines.sglang.env.FAKE_ENGINE_STARTUP_MS=300"
  )
}

# start_with_stand_in INVENTORY [ARGS...]: runs `$bin start` on $data (ports $port, $agent_port,
# $gw_port) with the stand-in engine (stand_in_engine_sets) on the simulated node INVENTORY and
# any further ARGS, appending to $work/server.log; sets $server_pid and waits for the server's
# /health.
start_with_stand_in() {
  local inv=$1
  shift
  stand_in_engine_sets "$inv"
  "$bin" --log-level info start --data-dir "$data" --gpu-inventory "$inv" \
    --port "$port" --agent-port "$agent_port" --gateway-port "$gw_port" \
    --set "agent.heartbeat_interval=1s" "${stand_in_sets[@]}" "$@" \
    >>"$work/server.log" 2>&1 &
  server_pid=$!
  wait_for "the server's /health on https://127.0.0.1:$port" 60 curl -skf "https://127.0.0.1:$port/health"
}

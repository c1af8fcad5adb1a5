#!/usr/bin/env bash
# e2e: a real inference engine end to end. `openstation start` on a temporary data dir with no
# inventory file (this machine, a CPU node), llama.cpp's llama-server built by
# scripts/llama-server.sh (cached after the first run), a tiny random-weight Qwen2 GGUF made by
# <build>/make-tiny-gguf from llama.cpp's Qwen2 vocabulary: import it as a local model, deploy it
# with the engine left to the platform (→ llama.cpp, ChatML added), then through the gateway with
# an API key: /v1/models, chat (plain and streamed), completions; the call log holds the engine's
# token counts, time to first token and tokens/s; scale to 2 and see requests on both; kill one
# llama-server → requests keep succeeding, the killed one is restarted; delete the service → the
# processes are gone and their ports free.
# $1 = the openstation binary, $2 = the source dir. Needs curl, jq, npm, git, cmake (first run).
# Exit 77 (skipped) when the npm registry cannot be reached to fetch llama.cpp's sources.
set -u
# Sampling is greedy (temperature 0) in every request: the random weights then give the same
# tokens each run (sampled gibberish can end inside a UTF-8 sequence, which llama-server answers
# with a 500).
exec 3>&2 # fail inside wait_for's conditions (whose output it hides) still reaches stderr
bin=$(realpath "$1")
src=$2
build=$(dirname "$bin")
for tool in curl jq; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is missing (scripts/install-deps.sh)" >&2; exit 1; }
done
[ -x "$build/make-tiny-gguf" ] || { echo "FAIL: $build/make-tiny-gguf is not built (cmake --build --target make-tiny-gguf)" >&2; exit 1; }

# llama-server: built once per machine (about 10 minutes on 2 cores), then reused.
llama_bin=$(bash "$src/scripts/llama-server.sh" build)
rc=$?
if [ "$rc" -eq 77 ]; then
  echo "SKIP: the npm registry is unreachable, so llama.cpp's sources (node-llama-cpp) cannot be fetched" >&2
  exit 77
fi
[ "$rc" -eq 0 ] && [ -x "$llama_bin" ] || { echo "FAIL: scripts/llama-server.sh build failed ($rc)" >&2; exit 1; }
vocab=$(bash "$src/scripts/llama-server.sh" dir)/models/ggml-vocab-qwen2.gguf

work=$(mktemp -d /tmp/os-e2e-llama.XXXXXX)
server_pid=
source "$src/tests/e2e/lib.bash"

cleanup() {
  [ -n "$server_pid" ] && kill -KILL "$server_pid" 2>/dev/null
  kill_matching "$work/" # the engines (launched through $work/bin) outlive a server on purpose
  rm -rf "$work"
}
trap cleanup EXIT

# The engine as a production user registers a llama-server built elsewhere: the command of the
# llama.cpp engine (here through the environment), reached through a link in $work/bin so that
# cleanup finds exactly ours.
mkdir -p "$work/bin" "$work/models"
ln -s "$llama_bin" "$work/bin/llama-server"
export OPENSTATION_ENGINES_LLAMA_CPP_COMMAND="$work/bin/llama-server"
"$build/make-tiny-gguf" "$vocab" "$work/models/tiny-qwen2.gguf" >/dev/null || fail "make-tiny-gguf failed"

port=$(free_port)
agent_port=$(free_port "$port")
gw_port=$(free_port "$port" "$agent_port")
gw_url=http://127.0.0.1:$gw_port
api_url=https://127.0.0.1:$port
data=$work/data

"$bin" --log-level info start --data-dir "$data" \
  --port "$port" --agent-port "$agent_port" --gateway-port "$gw_port" \
  --set "agent.heartbeat_interval=1s" >>"$work/server.log" 2>&1 &
server_pid=$!
wait_for "the server's /health on $api_url" 60 curl -skf "$api_url/health"
first_admin_login "$data" 'E2e-llama-9!'
expect 201 POST /api/v1/keys '{"name":"e2e-llama"}'
api_key=$(jbody .key)

# --- this machine as the node: a CPU node ---------------------------------------------------------
node_ready() {
  api GET /api/v1/nodes
  [ "$status" = 200 ] && [ "$(jbody '.items | length')" = 1 ] && [ "$(jbody '.items[0].status')" = ready ]
}
wait_for "the local node to be ready" 30 node_ready
node=$(jbody '.items[0].name')
expect 200 GET "/api/v1/nodes/$node"
[ "$(jbody '.gpus | length')" = 0 ] || echo "note: this machine has GPUs; the test still runs llama.cpp's CPU build" >&2

# --- import the GGUF, plan it: llama.cpp, ChatML said in the plan ------------------------------------
model=tiny-qwen2
expect 201 POST /api/v1/models "{\"name\":\"$model\",\"path\":\"$work/models/tiny-qwen2.gguf\",\"node\":\"$node\"}"
model_ready() {
  api GET "/api/v1/models/$model"
  [ "$status" = 200 ] && [ "$(jbody .status)" = ready ]
}
wait_for "the imported model to be ready" 30 model_ready
[ "$(jbody .format)" = gguf ] || fail "the model should be a GGUF: $(cat "$work/body")"
args='-c 1024 -np 2 -t 1 --no-warmup'
expect 200 POST /api/v1/plan "{\"model\":\"$model\",\"nodes\":[\"$node\"],\"extra_args\":\"$args\",\"served_name\":\"tiny\"}"
[ "$(jbody .engine)" = llama.cpp ] || fail "a GGUF model should be planned on llama.cpp: $(cat "$work/body")"
[ "$(jbody .ok)" = true ] || fail "the plan has errors: $(cat "$work/body")"
jbody '[.applied_fixes[].code] | join(" ")' | grep -qw plan.default_chat_template ||
  fail "the plan should say ChatML was added: $(cat "$work/body")"

# --- deploy with the engine left to the platform ----------------------------------------------------
expect 201 POST /api/v1/services "{\"name\":\"tiny\",\"model\":\"$model\",\"extra_args\":\"$args\"}"
running_count() {
  api GET /api/v1/services/tiny
  [ "$status" = 200 ] && [ "$(jbody '.instances | length')" = "$1" ] &&
    [ "$(jbody '[.instances[] | select(.state == "running")] | length')" = "$1" ]
}
wait_for "one running instance of tiny" 120 running_count 1
first=$(jbody '.instances[0].id')
expect 200 GET "/api/v1/instances/$first"
first_pid=$(jbody .pid)
first_port=$(jbody .port)
cmdline=$(tr '\0' ' ' <"/proc/$first_pid/cmdline")
case "$cmdline" in
  "$work/bin/llama-server "*"--alias tiny"*) ;;
  *) fail "instance $first does not run llama-server with --alias tiny: $cmdline" ;;
esac
case "$cmdline" in *"--chat-template chatml"*) ;; *) fail "no --chat-template chatml in: $cmdline" ;; esac
curl -sf "http://127.0.0.1:$first_port/health" >/dev/null || fail "llama-server's /health on $first_port does not answer 200"

# --- through the gateway with the API key ------------------------------------------------------------
gw() { # gw PATH JSON → body in $work/gw.json; succeeds on 200 (else the status is in $work/gw.status)
  local code
  code=$(curl -s -o "$work/gw.json" -w '%{http_code}' -H 'Content-Type: application/json' \
    -H "Authorization: Bearer $api_key" --data "$2" "$gw_url$1") || code=000
  echo "$code" >"$work/gw.status"
  [ "$code" = 200 ]
}
gw_said() { echo "HTTP $(cat "$work/gw.status"): $(head -c 600 "$work/gw.json")"; }
gateway_lists_tiny() {
  curl -sf -H "Authorization: Bearer $api_key" "$gw_url/v1/models" >"$work/gw-models.json" &&
    [ "$(jq -r '[.data[].id] | index("tiny")' "$work/gw-models.json")" != null ]
}
wait_for "the gateway to list tiny" 30 gateway_lists_tiny
chat_body='{"model":"tiny","messages":[{"role":"user","content":"Hello, who are you?"}],"max_tokens":8,"temperature":0}'
# The gateway learns the running instance from the store a moment after the API shows it: until
# then it answers 503 no_healthy_instance. Any other answer fails at once.
routed() {
  gw /v1/chat/completions "$chat_body" && return 0
  grep -q no_healthy_instance "$work/gw.json" ||
    fail "a chat completion through the gateway failed: $(gw_said)" 2>&3
  return 1
}
wait_for "the gateway to route tiny to its instance" 30 routed
[ "$(jq -r '.object' "$work/gw.json")" = chat.completion ] || fail "not a chat completion: $(cat "$work/gw.json")"
prompt_tokens=$(jq -r '.usage.prompt_tokens' "$work/gw.json")
completion_tokens=$(jq -r '.usage.completion_tokens' "$work/gw.json")
[ "$prompt_tokens" -gt 5 ] 2>/dev/null || fail "the engine's prompt token count is missing: $(cat "$work/gw.json")"
[ "$completion_tokens" -ge 1 ] && [ "$completion_tokens" -le 8 ] 2>/dev/null ||
  fail "completion tokens should be 1-8 (max_tokens 8): $(cat "$work/gw.json")"

stream_body='{"model":"tiny","messages":[{"role":"user","content":"Tell me a story"}],"max_tokens":12,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}'
curl -sfN -H 'Content-Type: application/json' -H "Authorization: Bearer $api_key" \
  --data "$stream_body" "$gw_url/v1/chat/completions" >"$work/stream.txt" || fail "a streamed chat failed"
grep -q '^data: \[DONE\]' "$work/stream.txt" || fail "the stream did not end with [DONE]: $(head -c 2000 "$work/stream.txt")"
chunks=$(grep -c '"chat.completion.chunk"' "$work/stream.txt")
[ "$chunks" -ge 2 ] || fail "the stream should have several chunks, got $chunks"
grep '^data: {' "$work/stream.txt" | sed 's/^data: //' | jq -s -e '[.[] | select(.usage != null)] | length >= 1' >/dev/null ||
  fail "the stream carried no usage (stream_options.include_usage)"

gw /v1/completions '{"model":"tiny","prompt":"Once upon a time","max_tokens":6,"temperature":0}' ||
  fail "a completion through the gateway failed: $(gw_said)"
[ "$(jq -r '.object' "$work/gw.json")" = text_completion ] || fail "not a text completion: $(cat "$work/gw.json")"
[ "$(jq -r '.usage.completion_tokens' "$work/gw.json")" -ge 1 ] || fail "no completion tokens: $(cat "$work/gw.json")"

# The call log: the engine's token counts, TTFT for the stream, tokens/s.
# Answered calls only: a 503 from before the gateway routed tiny is logged too, and must not
# count for one of the three still waiting for the writer's next batch.
logs_have() { # logs_have N: at least N answered (200) call logs of tiny
  api GET "/api/v1/services/tiny/call-logs?limit=200"
  [ "$status" = 200 ] && [ "$(jbody '[.items[] | select(.status == 200)] | length')" -ge "$1" ]
}
wait_for "three answered call logs of tiny" 30 logs_have 3
jbody ".items[] | select(.prompt_tokens == $prompt_tokens and .completion_tokens == $completion_tokens)" | grep -q . ||
  fail "no call log with the engine's counts ($prompt_tokens + $completion_tokens): $(cat "$work/body")"
[ "$(jbody '[.items[] | select(.ttft_ms != null and .ttft_ms >= 0)] | length')" -ge 1 ] ||
  fail "the streamed call has no time to first token: $(cat "$work/body")"
[ "$(jbody '[.items[] | select(.tokens_per_second > 0)] | length')" -ge 1 ] ||
  fail "no call log has tokens/s: $(cat "$work/body")"
[ "$(jbody '[.items[] | select(.total_tokens > 0 and .status == 200)] | length')" -ge 3 ] ||
  fail "every call should log its tokens: $(cat "$work/body")"

# --- scale to 2: requests spread over both ------------------------------------------------------------
expect 200 PATCH /api/v1/services/tiny '{"replicas":2}'
wait_for "two running instances of tiny" 120 running_count 2
second=$(jbody "[.instances[] | select(.id != \"$first\")][0].id")
expect 200 GET "/api/v1/instances/$second"
second_pid=$(jbody .pid)
second_port=$(jbody .port)
pair() { # two requests at once, so that least-outstanding routing has to use both instances
  gw /v1/chat/completions "$chat_body" &
  local p1=$!
  curl -sf -H 'Content-Type: application/json' -H "Authorization: Bearer $api_key" \
    --data '{"model":"tiny","prompt":"Hi","max_tokens":4,"temperature":0}' "$gw_url/v1/completions" >/dev/null &
  local p2=$!
  wait "$p1" || fail "a chat failed with two instances: $(gw_said)" 2>&3
  wait "$p2" || fail "a completion failed with two instances" 2>&3
}
spread() {
  pair
  api GET "/api/v1/services/tiny/call-logs?limit=200"
  [ "$status" = 200 ] &&
    [ "$(jbody "[.items[] | select(.instance_id == \"$first\")] | length")" -ge 1 ] &&
    [ "$(jbody "[.items[] | select(.instance_id == \"$second\")] | length")" -ge 1 ]
}
wait_for "call logs on both instances ($first, $second)" 90 spread

# --- kill one llama-server: requests keep succeeding, the killed one is restarted --------------------
(
  ok=0 bad=0
  while [ ! -f "$work/stop-traffic" ]; do
    if curl -sf -H 'Content-Type: application/json' -H "Authorization: Bearer $api_key" \
      --data "$chat_body" "$gw_url/v1/chat/completions" >/dev/null; then
      ok=$((ok + 1))
    else
      bad=$((bad + 1))
    fi
  done
  echo "$ok $bad" >"$work/traffic"
) &
traffic_pid=$!
sleep 1
kill -KILL "$second_pid"
restarted() {
  api GET "/api/v1/instances/$second"
  [ "$status" = 200 ] && [ "$(jbody .state)" = running ] && [ "$(jbody .restarts)" -ge 1 ] &&
    [ "$(jbody .pid)" != "$second_pid" ]
}
wait_for "instance $second to be restarted after its llama-server was killed" 120 restarted
second_pid=$(jbody .pid)
second_port=$(jbody .port)
touch "$work/stop-traffic"
wait "$traffic_pid"
read -r ok bad <"$work/traffic"
[ "$ok" -gt 0 ] || fail "no request went through while one llama-server was down"
[ "$bad" -eq 0 ] || fail "$bad of $((ok + bad)) requests failed while one llama-server was down and restarted"
curl -sf "http://127.0.0.1:$second_port/health" >/dev/null || fail "the restarted llama-server does not answer /health"

# --- delete the service: the processes are gone, the ports free ---------------------------------------
expect 202 DELETE /api/v1/services/tiny
gone() {
  api GET /api/v1/services/tiny
  [ "$status" = 404 ]
}
wait_for "the service to be deleted" 90 gone
for pid in "$first_pid" "$second_pid"; do
  wait_for "llama-server pid $pid to exit" 30 bash -c "! kill -0 $pid"
done
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$first_port" "$second_port"; do
  wait_for "port $p to be free" 30 port_free "$p"
done
pgrep -f "$work/bin/llama-server" >/dev/null && fail "a llama-server of this test still runs: $(pgrep -af "$work/bin/llama-server")"

kill -TERM "$server_pid"
wait "$server_pid"
rc=$?
server_pid=
[ "$rc" -eq 0 ] || fail "the server exited $rc after SIGTERM"
echo "PASS ($ok requests while one llama-server was restarted)"

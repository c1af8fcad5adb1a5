#!/usr/bin/env bash
# e2e: `openstation start` (server + local agent in one process) end to end, on a temporary data
# dir, a simulated node of 2 GPUs (examples/nodes/2x-a100-40g.json) and the stand-in engine
# (<build>/fake-engine): log in, change the password, create a key, import and deploy the 1.5B
# distill, see it running and answering /v1/models on its port, scale to 2, remove one while
# requests keep flowing to the other, kill the engine → restarted, stop and restart the server →
# the same state, the instances still running and adopted.
# $1 = the openstation binary, $2 = the source dir. Needs curl, jq and python3.
set -u
bin=$(realpath "$1")
src=$2
build=$(dirname "$bin")
for tool in curl jq python3; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is missing (scripts/install-deps.sh)" >&2; exit 1; }
done
[ -x "$build/fake-engine" ] || { echo "FAIL: $build/fake-engine is not built (cmake --build --target fake-engine)" >&2; exit 1; }

work=$(mktemp -d /tmp/os-e2e-start.XXXXXX)
server_pid=
source "$src/tests/e2e/lib.bash"

cleanup() {
  [ -n "$server_pid" ] && kill -KILL "$server_pid" 2>/dev/null
  kill_matching "$work/"  # the engines (launched through $work/bin) outlive a server on purpose
  rm -rf "$work"
}
trap cleanup EXIT

# The engines: the stand-in, reached through links in $work/bin so cleanup finds exactly ours.
mkdir -p "$work/bin"
ln -s "$build/fake-engine" "$work/bin/vllm"
ln -s "$build/fake-engine" "$work/bin/fake-engine"
inventory=$src/examples/nodes/2x-a100-40g.json
port=$(free_port)
agent_port=$(free_port "$port")
gw_port=$(free_port "$port" "$agent_port")
gw_url=http://127.0.0.1:$gw_port
api_url=https://127.0.0.1:$port
data=$work/data

start_server() { start_with_stand_in "$inventory"; }

stop_server() {
  kill -TERM "$server_pid"
  local deadline=$((SECONDS + 40))
  while kill -0 "$server_pid" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || fail "the server did not stop within 40 s of SIGTERM"
    sleep 0.2
  done
  wait "$server_pid"
  local rc=$?
  server_pid=
  [ "$rc" -eq 0 ] || fail "the server exited $rc after SIGTERM"
}

# --- first start: HTTPS with a self-signed certificate, the first admin ---------------------------
start_server
[ -f "$data/tls/server.crt" ] || fail "no self-signed certificate in $data/tls"
fp=$(openssl x509 -in "$data/tls/server.crt" -noout -fingerprint -sha256 | sed 's/.*=//')
grep -qF "$fp" "$work/server.log" || fail "the server did not print its certificate fingerprint $fp"
curl -sf "http://127.0.0.1:$port/health" >/dev/null && fail "the server answers plain HTTP"
[ -f "$data/initial-admin-password" ] || fail "no $data/initial-admin-password"
initial=$(head -n 1 "$data/initial-admin-password" | tr -d '[:space:]')
grep -qF "$initial" "$work/server.log" || fail "the first admin's password was not printed"

# --- log in, change the password, create a key ------------------------------------------------------
token=
expect 401 GET /api/v1/nodes
expect 200 POST /api/v1/auth/login "{\"username\":\"admin\",\"password\":\"$initial\"}"
[ "$(jbody .must_change_password)" = true ] || fail "the first login must require a password change"
token=$(jbody .token)
expect 403 GET /api/v1/nodes
[ "$(jbody .error.code)" = auth.password_change_required ] || fail "expected auth.password_change_required: $(cat "$work/body")"
password='E2e-secret-9!'
expect 204 POST /api/v1/auth/password "{\"current_password\":\"$initial\",\"new_password\":\"$password\"}"
expect 200 POST /api/v1/auth/login "{\"username\":\"admin\",\"password\":\"$password\"}"
token=$(jbody .token)
expect 201 POST /api/v1/keys '{"name":"e2e"}'
api_key=$(jbody .key)
case "$api_key" in sk-os-*) ;; *) fail "the key does not look like sk-os-...: $(cat "$work/body")" ;; esac

# --- the local node ---------------------------------------------------------------------------------
node_ready() {
  api GET /api/v1/nodes
  [ "$status" = 200 ] && [ "$(jbody '.items | length')" = 1 ] && [ "$(jbody '.items[0].status')" = ready ]
}
wait_for "the local node to be ready" 30 node_ready
node=$(jbody '.items[0].name')
expect 200 GET "/api/v1/nodes/$node"
[ "$(jbody '.gpus | length')" = 2 ] || fail "the node should report the inventory's 2 GPUs: $(cat "$work/body")"

# --- import and deploy the 1.5B distill --------------------------------------------------------------
make_distill_dir "$work/models/DeepSeek-R1-Distill-Qwen-1.5B" || fail "cannot write the model files"
model=deepseek-r1-distill-qwen-1.5b
expect 201 POST /api/v1/models "{\"name\":\"$model\",\"path\":\"$work/models/DeepSeek-R1-Distill-Qwen-1.5B\",\"node\":\"$node\"}"
model_ready() {
  api GET "/api/v1/models/$model"
  [ "$status" = 200 ] && [ "$(jbody .status)" = ready ]
}
wait_for "the imported model to be ready" 30 model_ready
expect 201 POST /api/v1/services "{\"name\":\"r1\",\"model\":\"$model\"}"

# running_count N: the service has exactly N instances, all running.
running_count() {
  api GET /api/v1/services/r1
  [ "$status" = 200 ] && [ "$(jbody '.instances | length')" = "$1" ] &&
    [ "$(jbody '[.instances[] | select(.state == "running")] | length')" = "$1" ]
}
wait_for "one running instance of r1" 90 running_count 1
first=$(jbody '.instances[0].id')
expect 200 GET "/api/v1/instances/$first"
first_port=$(jbody .port)
first_pid=$(jbody .pid)
[ "$first_port" -gt 0 ] 2>/dev/null || fail "instance $first has no port: $(cat "$work/body")"
kill -0 "$first_pid" 2>/dev/null || fail "instance $first's pid $first_pid is not running"
curl -sf "http://127.0.0.1:$first_port/v1/models" >"$work/models.json" ||
  fail "the engine of $first does not answer /v1/models on port $first_port"
[ "$(jq '.data | length' "$work/models.json")" -ge 1 ] || fail "/v1/models lists nothing: $(cat "$work/models.json")"
served=$(jq -r '.data[0].id' "$work/models.json")
expect 200 POST "/api/v1/instances/$first/check"
[ "$(jbody .healthy)" = true ] || fail "the health check of $first failed: $(cat "$work/body")"

# --- scale to 2, then remove one while requests keep flowing to the other ---------------------------
expect 200 PATCH /api/v1/services/r1 '{"replicas":2}'
wait_for "two running instances of r1" 90 running_count 2
second=$(jbody "[.instances[] | select(.id != \"$first\")][0].id")
expect 200 GET "/api/v1/instances/$second"
second_pid=$(jbody .pid)

# Through the gateway with the API key: it routes r1 to both instances, then, once one drains,
# only to the other; no request may fail on the way.
chat() {
  curl -sf -H 'Content-Type: application/json' -H "Authorization: Bearer $api_key" \
    --data "{\"model\":\"r1\",\"messages\":[{\"role\":\"user\",\"content\":\"hello there\"}],\"max_tokens\":4}" \
    "$gw_url/v1/chat/completions" >/dev/null
}
gateway_lists_r1() {
  curl -sf -H "Authorization: Bearer $api_key" "$gw_url/v1/models" >"$work/gw-models.json" &&
    [ "$(jq -r '.data[0].id' "$work/gw-models.json")" = r1 ]
}
wait_for "the gateway to list r1" 20 gateway_lists_r1
chat || fail "a chat completion through the gateway failed"
[ "$served" = r1 ] || fail "the engine should serve the service's name r1, not $served"
(
  ok=0 bad=0
  while [ ! -f "$work/stop-traffic" ]; do
    if chat; then ok=$((ok + 1)); else bad=$((bad + 1)); fi
  done
  echo "$ok $bad" >"$work/traffic"
) &
traffic_pid=$!
expect 202 DELETE "/api/v1/instances/$second"
wait_for "r1 to be back to one running instance" 60 running_count 1
[ "$(jbody '.instances[0].id')" = "$first" ] || fail "the wrong instance went: $(cat "$work/body")"
[ "$(jbody .replicas)" = 1 ] || fail "removing an instance should leave replicas at 1: $(cat "$work/body")"
wait_for "the removed instance's engine (pid $second_pid) to exit" 30 bash -c "! kill -0 $second_pid"
touch "$work/stop-traffic"
wait "$traffic_pid"
read -r ok bad <"$work/traffic"
[ "$ok" -gt 0 ] || fail "no request went through while the other instance was removed"
[ "$bad" -eq 0 ] || fail "$bad of $((ok + bad)) requests to the remaining instance failed during the removal"

# --- kill the engine: the agent restarts it ----------------------------------------------------------
kill -KILL "$first_pid"
restarted() {
  api GET "/api/v1/instances/$first"
  [ "$status" = 200 ] && [ "$(jbody .state)" = running ] && [ "$(jbody .restarts)" -ge 1 ] &&
    [ "$(jbody .pid)" != "$first_pid" ]
}
wait_for "instance $first to be restarted after its engine was killed" 60 restarted
first_pid=$(jbody .pid)
first_port=$(jbody .port) # a restart may take another port from the range
restarts=$(jbody .restarts)
curl -sf "http://127.0.0.1:$first_port/v1/models" >/dev/null || fail "the restarted engine does not answer"

# --- stop and restart: the same state, the instance adopted -------------------------------------------
expect 200 GET /api/v1/services/r1
jq -S '{name, model, engine, replicas, instances: [.instances[] | {id, port, pid}]}' "$work/body" >"$work/before.json"
stop_server
kill -0 "$first_pid" 2>/dev/null || fail "stopping the server stopped the engine (pid $first_pid); it must keep running"
curl -sf "http://127.0.0.1:$first_port/v1/models" >/dev/null || fail "the engine stopped answering while the server was down"
start_server
grep -c "First start" "$work/server.log" | grep -qx 1 || fail "the restart printed a first-start notice again"
token=
expect 200 POST /api/v1/auth/login "{\"username\":\"admin\",\"password\":\"$password\"}"
token=$(jbody .token)
[ "$(jbody .must_change_password)" = false ] || fail "the changed password was lost"
wait_for "the local node to be ready again" 30 node_ready
adopted() {
  running_count 1 && [ "$(jbody '.instances[0].id')" = "$first" ] && [ "$(jbody '.instances[0].pid')" = "$first_pid" ]
}
wait_for "instance $first to be running, adopted with its pid $first_pid" 30 adopted
jq -S '{name, model, engine, replicas, instances: [.instances[] | {id, port, pid}]}' "$work/body" >"$work/after.json"
diff "$work/before.json" "$work/after.json" >&2 || fail "the service changed across the restart"
expect 200 GET "/api/v1/instances/$first"
[ "$(jbody .restarts)" = "$restarts" ] || fail "the adopted instance was restarted: $(cat "$work/body")"
expect 200 GET /api/v1/keys
[ "$(jbody '.items | length')" = 1 ] || fail "the key was lost across the restart"

# --- keys made and revoked through the API reach the gateway at once, not at its 30 s reread --------
gateway_says() {  # KEY CODE: the gateway answers /v1/models with KEY by CODE
  [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $1" "$gw_url/v1/models")" = "$2" ]
}
expect 201 POST /api/v1/keys '{"name":"short-lived"}'
short_key=$(jbody .key)
short_id=$(jbody .api_key.id)
wait_for "the gateway to take a new key" 5 gateway_says "$short_key" 200
expect 204 DELETE "/api/v1/keys/$short_id"
wait_for "the gateway to refuse the revoked key" 5 gateway_says "$short_key" 401
gateway_says "$api_key" 200 || fail "revoking one key refused another"
stop_server
echo "PASS"

#!/usr/bin/env bash
# e2e: `openstation gateway --server URL`, a gateway replica on its own, against `openstation start`
# (stand-in engine, simulated 2-GPU node): the replica follows the server over HTTPS with the
# pinned certificate fingerprint, authenticated with an admin's API key; it serves chat (plain and
# streamed) through the running instance; a key revoked on the server gets 401 from the replica
# within one route-table update; the replica's call logs land in the server's store, listed per
# service; SIGTERM drains and stops it.
# $1 = the openstation binary, $2 = the source dir. Needs curl, jq, openssl and python3.
set -u
bin=$(realpath "$1")
src=$2
build=$(dirname "$bin")
for tool in curl jq openssl python3; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is missing (scripts/install-deps.sh)" >&2; exit 1; }
done
[ -x "$build/fake-engine" ] || { echo "FAIL: $build/fake-engine is not built (cmake --build --target fake-engine)" >&2; exit 1; }

work=$(mktemp -d /tmp/os-e2e-replica.XXXXXX)
server_pid=
replica_pid=
source "$src/tests/e2e/lib.bash"

cleanup() {
  [ -n "$replica_pid" ] && kill -KILL "$replica_pid" 2>/dev/null
  [ -n "$server_pid" ] && kill -KILL "$server_pid" 2>/dev/null
  kill_matching "$work/"
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/bin"
ln -s "$build/fake-engine" "$work/bin/vllm"
ln -s "$build/fake-engine" "$work/bin/fake-engine"
inventory=$src/examples/nodes/2x-a100-40g.json
port=$(free_port)
agent_port=$(free_port "$port")
gw_port=$(free_port "$port" "$agent_port")
replica_port=$(free_port "$port" "$agent_port" "$gw_port")
api_url=https://127.0.0.1:$port
replica_url=http://127.0.0.1:$replica_port
data=$work/data

start_with_stand_in "$inventory"
fp=$(openssl x509 -in "$data/tls/server.crt" -noout -fingerprint -sha256 | sed 's/.*=//')
first_admin_login "$data" 'E2e-secret-9!'
expect 201 POST /api/v1/keys '{"name":"replica"}'
replica_key=$(jbody .key)
expect 201 POST /api/v1/keys '{"name":"client"}'
client_key=$(jbody .key)
client_key_id=$(jbody .api_key.id)

node_ready() {
  api GET /api/v1/nodes
  [ "$status" = 200 ] && [ "$(jbody '.items | length')" = 1 ] && [ "$(jbody '.items[0].status')" = ready ]
}
wait_for "the local node to be ready" 30 node_ready
node=$(jbody '.items[0].name')
make_distill_dir "$work/models/DeepSeek-R1-Distill-Qwen-1.5B" || fail "cannot write the model files"
model=deepseek-r1-distill-qwen-1.5b
expect 201 POST /api/v1/models "{\"name\":\"$model\",\"path\":\"$work/models/DeepSeek-R1-Distill-Qwen-1.5B\",\"node\":\"$node\"}"
model_ready() {
  api GET "/api/v1/models/$model"
  [ "$status" = 200 ] && [ "$(jbody .status)" = ready ]
}
wait_for "the imported model to be ready" 30 model_ready
expect 201 POST /api/v1/services "{\"name\":\"r1\",\"model\":\"$model\"}"
running() {
  api GET /api/v1/services/r1
  [ "$status" = 200 ] && [ "$(jbody '[.instances[] | select(.state == "running")] | length')" = 1 ]
}
wait_for "a running instance of r1" 90 running

# --- the replica: refused without a credential, then started with an admin's key ------------------
"$bin" gateway --server "$api_url" --server-fingerprint "$fp" --port "$replica_port" \
  >"$work/replica-nokey.log" 2>&1 && fail "the replica started without a credential"
grep -q "needs an admin's API key" "$work/replica-nokey.log" || fail "no credential error: $(cat "$work/replica-nokey.log")"
OPENSTATION_GATEWAY_SERVER_KEY=$client_key "$bin" gateway --server "$api_url" \
  --server-fingerprint "sha256:$(printf '00:%.0s' $(seq 31))00" --port "$replica_port" \
  >"$work/replica-badfp.log" 2>&1 && fail "the replica trusted a wrong fingerprint"
grep -qi "fingerprint" "$work/replica-badfp.log" || fail "no fingerprint error: $(cat "$work/replica-badfp.log")"

OPENSTATION_GATEWAY_SERVER_KEY=$replica_key "$bin" --log-level info gateway --server "$api_url" \
  --server-fingerprint "$fp" --port "$replica_port" >>"$work/replica.log" 2>&1 &
replica_pid=$!
wait_for "the replica's /health on $replica_url" 30 curl -sf "$replica_url/health"

# chat CODE KEY BODY: a POST /v1/chat/completions through the replica; body in $work/chat.
chat() {
  curl -s -o "$work/chat" -w '%{http_code}' -H "Authorization: Bearer $1" \
    -H "Content-Type: application/json" --data "$2" "$replica_url/v1/chat/completions"
}
models=$(curl -sf -H "Authorization: Bearer $client_key" "$replica_url/v1/models") || fail "GET /v1/models on the replica failed"
[ "$(echo "$models" | jq -r '.data[0].id')" = r1 ] || fail "the replica does not list r1: $models"
code=$(chat "$client_key" '{"model":"r1","messages":[{"role":"user","content":"hello"}],"max_tokens":5}')
[ "$code" = 200 ] || fail "chat through the replica answered $code: $(cat "$work/chat")"
[ -n "$(jq -r '.choices[0].message.content' "$work/chat")" ] || fail "no content: $(cat "$work/chat")"
code=$(chat "$client_key" '{"model":"r1","stream":true,"messages":[{"role":"user","content":"hello"}],"max_tokens":5}')
[ "$code" = 200 ] || fail "streamed chat through the replica answered $code"
grep -q '^data: \[DONE\]' "$work/chat" || fail "the replica's stream did not end with [DONE]: $(cat "$work/chat")"

# --- revoked on the server: 401 from the replica within one update ------------------------------------
expect 204 DELETE "/api/v1/keys/$client_key_id"
revoked_at=$SECONDS
refused() { [ "$(chat "$client_key" '{"model":"r1","messages":[]}')" = 401 ]; }
wait_for "the replica to refuse the revoked key" 10 refused
echo "revoked key refused by the replica after $((SECONDS - revoked_at)) s"
jq -e '.error.code == "invalid_api_key"' "$work/chat" >/dev/null || fail "expected invalid_api_key: $(cat "$work/chat")"

# --- the replica's call logs reach the store ----------------------------------------------------------
logged() {
  api GET "/api/v1/services/r1/call-logs?limit=100"
  [ "$status" = 200 ] && [ "$(jbody '[.items[] | select(.status == 200)] | length')" -ge 2 ]
}
wait_for "the replica's call logs in the server's store" 15 logged

# --- SIGTERM drains and stops the replica ------------------------------------------------------------
kill -TERM "$replica_pid"
deadline=$((SECONDS + 40))
while kill -0 "$replica_pid" 2>/dev/null; do
  [ "$SECONDS" -lt "$deadline" ] || fail "the replica did not stop within 40 s of SIGTERM"
  sleep 0.2
done
wait "$replica_pid"
rc=$?
replica_pid=
[ "$rc" -eq 0 ] || fail "the replica exited $rc after SIGTERM"
echo "PASS: gateway replica"

#!/usr/bin/env bash
# e2e: the official `openai` npm client (pinned in tests/e2e/openai/package-lock.json, installed
# here with `npm ci` into a temp dir) against the gateway of `openstation start` with the
# stand-in engine: models.list, chat plain and streamed, completions, embeddings, and the error
# cases (bad key 401, unknown model 404, forbidden model 403, malformed requests 400).
# Exits 77 (skipped, with the reason) when node/npm are missing or the npm registry is unreachable.
# $1 = the openstation binary, $2 = the source dir. Needs curl, jq, python3, node and npm.
set -u
bin=$(realpath "$1")
src=$2
build=$(dirname "$bin")
for tool in curl jq python3; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is missing (scripts/install-deps.sh)" >&2; exit 1; }
done
for tool in node npm; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool is missing; the openai client test needs Node.js 20 and npm" >&2; exit 77; }
done
[ -x "$build/fake-engine" ] || { echo "FAIL: $build/fake-engine is not built (cmake --build --target fake-engine)" >&2; exit 1; }

work=$(mktemp -d /tmp/os-e2e-openai.XXXXXX)
server_pid=
source "$src/tests/e2e/lib.bash"

cleanup() {
  [ -n "$server_pid" ] && kill -KILL "$server_pid" 2>/dev/null
  kill_matching "$work/"
  rm -rf "$work"
}
trap cleanup EXIT

# --- the client, from the npm registry (the lock file pins it) --------------------------------------
mkdir -p "$work/openai"
cp "$src/tests/e2e/openai/package.json" "$src/tests/e2e/openai/package-lock.json" \
  "$src/tests/e2e/openai/client_test.mjs" "$work/openai/"
if ! (cd "$work/openai" && timeout 180 npm ci --no-audit --no-fund --loglevel=error) >"$work/npm.log" 2>&1; then
  echo "SKIP: npm could not install the openai client (registry unreachable?):" >&2
  tail -n 5 "$work/npm.log" >&2
  exit 77
fi

mkdir -p "$work/bin"
ln -s "$build/fake-engine" "$work/bin/vllm"
ln -s "$build/fake-engine" "$work/bin/fake-engine"
inventory=$src/examples/nodes/2x-a100-40g.json
port=$(free_port)
agent_port=$(free_port "$port")
gw_port=$(free_port "$port" "$agent_port")
api_url=https://127.0.0.1:$port
gw_url=http://127.0.0.1:$gw_port
data=$work/data

start_with_stand_in "$inventory"
first_admin_login "$data" 'E2e-secret-9!'
expect 201 POST /api/v1/keys '{"name":"sdk"}'
key=$(jbody .key)
expect 201 POST /api/v1/keys '{"name":"limited","allowed_models":["some-other-model"]}'
limited_key=$(jbody .key)

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
routable() {
  curl -sf -H "Authorization: Bearer $key" -H "Content-Type: application/json" \
    --data '{"model":"r1","messages":[{"role":"user","content":"hi"}],"max_tokens":1}' \
    "$gw_url/v1/chat/completions"
}
wait_for "r1 to answer through the gateway" 90 routable

OS_GATEWAY_URL=$gw_url/v1 OS_KEY=$key OS_LIMITED_KEY=$limited_key OS_MODEL=r1 \
  timeout 120 node "$work/openai/client_test.mjs" >"$work/client.log" 2>&1
rc=$?
cat "$work/client.log"
[ "$rc" -eq 0 ] || fail "the openai client test failed (exit $rc)"

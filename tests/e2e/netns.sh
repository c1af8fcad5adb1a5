#!/usr/bin/env bash
# e2e: two agents in separate network namespaces (veth pairs on a bridge, made here) join one
# `openstation server` over HTTPS, trusting it by its certificate fingerprint; a 2-node vLLM plan
# and deploy get a head and a worker; cutting one namespace's link makes that node not_ready with
# the reason visible in GET /api/v1/nodes.
# $1 = the openstation binary, $2 = the source dir. Needs root and `ip netns`; skips (exit 77)
# otherwise.
set -u
bin=$(realpath "$1")
src=$2
build=$(dirname "$bin")

if [ "$(id -u)" -ne 0 ]; then
  echo "SKIP: netns.sh needs root to create network namespaces (run ctest as root)"
  exit 77
fi
if ! command -v ip >/dev/null || ! ip netns list >/dev/null 2>&1; then
  echo "SKIP: 'ip netns' is not available (install iproute2)"
  exit 77
fi
for tool in curl jq python3; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is missing (scripts/install-deps.sh)" >&2; exit 1; }
done
[ -x "$build/fake-engine" ] || { echo "FAIL: $build/fake-engine is not built" >&2; exit 1; }

work=$(mktemp -d /tmp/os-e2e-netns.XXXXXX)
source "$src/tests/e2e/lib.bash"

tag=$(printf '%05d' $((RANDOM % 100000)))
bridge=osbr$tag
subnet=10.$((200 + RANDOM % 50)).$((RANDOM % 250)).
server_ip=${subnet}1
pids=()
namespaces=()

cleanup() {
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  kill_matching "$work/"
  for ns in "${namespaces[@]}"; do ip netns del "$ns" 2>/dev/null; done
  ip link del "$bridge" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# --- the network: a bridge with the server's address, one namespace per node ------------------------
if ! ip link add "$bridge" type bridge 2>"$work/ip.err"; then
  echo "SKIP: cannot create a bridge here ($(cat "$work/ip.err")): no CAP_NET_ADMIN?"
  exit 77
fi
ip addr add "${server_ip}/24" dev "$bridge" || fail "cannot address the bridge"
ip link set "$bridge" up || fail "cannot bring the bridge up"
# add_node NAME INDEX: namespace os<tag><NAME> with eth0 = ${subnet}<INDEX>, host side on the bridge.
add_node() {
  local ns=os$tag$1 host=osv$tag$1
  ip netns add "$ns" || fail "ip netns add $ns failed"
  namespaces+=("$ns")
  ip link add "$host" type veth peer name eth0 netns "$ns" || fail "cannot create the veth pair for $ns"
  ip link set "$host" master "$bridge" up || fail "cannot attach $host to $bridge"
  ip -n "$ns" addr add "${subnet}$2/24" dev eth0 || fail "cannot address eth0 in $ns"
  ip -n "$ns" link set eth0 up || fail "cannot bring eth0 up in $ns"
  ip -n "$ns" link set lo up || fail "cannot bring lo up in $ns"
}
add_node a 2
add_node b 3
ip netns exec "os${tag}a" ping -c 1 -W 2 "$server_ip" >/dev/null 2>&1 ||
  fail "namespace a cannot reach the server address $server_ip over the bridge"

# --- the server ---------------------------------------------------------------------------------------
port=$(free_port)
api_url=https://$server_ip:$port
"$bin" --log-level info server --data-dir "$work/server" --port "$port" \
  --set "server.host=0.0.0.0" --set "server.node_timeout=3s" >"$work/server.log" 2>&1 &
pids+=($!)
wait_for "the server's /health on $api_url" 60 curl -skf "$api_url/health"
fp=$(openssl x509 -in "$work/server/tls/server.crt" -noout -fingerprint -sha256 | sed 's/.*=//')
initial=$(head -n 1 "$work/server/initial-admin-password" | tr -d '[:space:]')
token=
expect 200 POST /api/v1/auth/login "{\"username\":\"admin\",\"password\":\"$initial\"}"
token=$(jbody .token)
password='Netns-secret-7!'
expect 204 POST /api/v1/auth/password "{\"current_password\":\"$initial\",\"new_password\":\"$password\"}"
expect 200 POST /api/v1/auth/login "{\"username\":\"admin\",\"password\":\"$password\"}"
token=$(jbody .token)
expect 201 POST /api/v1/join-tokens '{"ttl_seconds":600}'
join=$(jbody .token)

# --- one agent per namespace ---------------------------------------------------------------------------
inventory=$src/examples/nodes/2x-a100-40g.json
mkdir -p "$work/bin"
ln -s "$build/fake-engine" "$work/bin/vllm"
start_agent() {
  local name=$1 ip=$2
  ip netns exec "os$tag$name" "$bin" --log-level info agent --server "$api_url" \
    --server-fingerprint "$fp" --token "$join" --data-dir "$work/agent-$name" \
    --name "node-$name" --address "$ip" --gpu-inventory "$inventory" --port 32208 --watch-wait 2 \
    --set "agent.heartbeat_interval=1s" \
    --set "engines.vllm.command=$work/bin/vllm" \
    --set "engines.vllm.env.OPENSTATION_FAKE_GPU_INVENTORY=$inventory" \
    >"$work/agent-$name.log" 2>&1 &
  pids+=($!)
}
start_agent a "${subnet}2"
start_agent b "${subnet}3"
both_ready() {
  api GET /api/v1/nodes
  [ "$status" = 200 ] &&
    [ "$(jbody '[.items[] | select(.status == "ready")] | length')" = 2 ]
}
wait_for "node-a and node-b to join and be ready" 40 both_ready
[ "$(jbody '[.items[] | select(.name == "node-a")][0].address')" = "${subnet}2" ] ||
  fail "node-a should be reached on ${subnet}2: $(cat "$work/body")"

# A wrong fingerprint is refused by the agent (it never talks to an impostor).
ip netns exec "os${tag}a" "$bin" agent --server "$api_url" \
  --server-fingerprint "sha256:$(printf '00%.0s' $(seq 32) | sed 's/../&:/g; s/:$//')" \
  --token "$join" --data-dir "$work/agent-impostor" --name impostor --port 0 \
  --gpu-inventory "$inventory" >"$work/impostor.out" 2>&1 &
impostor=$!
pids+=($impostor)
wait_for "the agent with a wrong fingerprint to give up" 30 bash -c "! kill -0 $impostor"
grep -q "fingerprint" "$work/impostor.out" || fail "the wrong fingerprint was not reported: $(cat "$work/impostor.out")"
expect 200 GET /api/v1/nodes
[ "$(jbody '.items | length')" = 2 ] || fail "an agent with a wrong fingerprint joined"

# --- a 2-node vLLM plan and deploy: head and worker ------------------------------------------------------
make_distill_dir "$work/models/r1-1.5b" || fail "cannot write the model files"
expect 201 POST /api/v1/models "{\"name\":\"r1-1.5b\",\"path\":\"$work/models/r1-1.5b\",\"node\":\"node-a\"}"
wait_for "the model to be ready" 30 bash -c "curl -skf -H 'Authorization: Bearer $token' $api_url/api/v1/models/r1-1.5b | jq -e '.status == \"ready\"'"
expect 200 POST /api/v1/plan '{"model":"r1-1.5b","nodes":["node-a","node-b"],"engine":"vllm"}'
cp "$work/body" "$work/plan.json"
roles=$(jq -c '[.. | objects | select(has("role") and has("name")) | {name, role}]' "$work/plan.json")
echo "$roles" | jq -e 'any(.[]; .name == "node-a" and .role == "head")' >/dev/null ||
  fail "the 2-node vLLM plan should make node-a the head: $roles $(cat "$work/plan.json")"
echo "$roles" | jq -e 'any(.[]; .name == "node-b" and .role == "worker")' >/dev/null ||
  fail "the 2-node vLLM plan should make node-b a worker: $roles"
expect 201 POST /api/v1/services '{"name":"dist","model":"r1-1.5b","engine":"vllm","nodes":["node-a","node-b"]}'
placed() {
  api GET /api/v1/services/dist
  [ "$status" = 200 ] && [ "$(jbody '.instances | length')" = 1 ] &&
    [ "$(jbody '.instances[0].nodes | length')" = 2 ]
}
wait_for "the distributed instance to be placed on both nodes" 30 placed
[ "$(jbody '.instances[0].nodes[0]' | grep -c node-a)" = 1 ] ||
  fail "node-a, listed first, should be the head: $(cat "$work/body")"

# --- cut node-b's link: not_ready, with the reason in the API --------------------------------------------
ip link set "osv${tag}b" down || fail "cannot cut node-b's link"
b_not_ready() {
  api GET /api/v1/nodes
  [ "$status" = 200 ] &&
    [ "$(jbody '[.items[] | select(.name == "node-b")][0].status')" = not_ready ]
}
wait_for "node-b to become not_ready after its link was cut" 30 b_not_ready
reason=$(jbody '[.items[] | select(.name == "node-b")][0].status_reason')
case "$reason" in *heartbeat*) ;; *) fail "node-b's not_ready reason should name the missed heartbeats: '$reason'" ;; esac
[ "$(jbody '[.items[] | select(.name == "node-a")][0].status')" = ready ] || fail "node-a should stay ready"
echo "node-b: not_ready ($reason)"
echo "PASS"

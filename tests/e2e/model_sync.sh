#!/usr/bin/env bash
# e2e: node sync. `openstation start` (server + local agent, data dir $work/server) downloads a
# small Qwen2 look-alike (~650 MB, sparse) from a fake HuggingFace hub into its model store; a
# second agent (`openstation agent`, its own data dir $work/node2, agent.model_sync = "always":
# both run on this one machine, so the store's marker would otherwise tell it that it shares the
# server's storage; agent.model_sync_rate = 100 MiB/s, so the pull lasts a few seconds) gets an
# instance of it: the instance passes through `preparing` with the
# pull's progress in GET /api/v1/instances/{id}, the files land verified in
# $work/node2/agent/models/<model id>/, the stand-in engine runs with its argv pointing there; a
# second instance reuses the copy (nothing pulled again). The local agent, which shares the
# store, runs the model from the store's path and copies nothing.
# $1 = the openstation binary, $2 = the source dir. Needs curl, jq, python3 and openssl.
set -u
bin=$(realpath "$1")
src=$2
build=$(dirname "$bin")
for tool in curl jq python3 openssl; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is missing (scripts/install-deps.sh)" >&2; exit 1; }
done
[ -x "$build/fake-engine" ] || { echo "FAIL: $build/fake-engine is not built (cmake --build --target fake-engine)" >&2; exit 1; }

work=$(mktemp -d /tmp/os-e2e-sync.XXXXXX)
server_pid=
agent_pid=
hub_pid=
source "$src/tests/e2e/lib.bash"

cleanup() {
  [ -n "$agent_pid" ] && kill -KILL "$agent_pid" 2>/dev/null
  [ -n "$server_pid" ] && kill -KILL "$server_pid" 2>/dev/null
  [ -n "$hub_pid" ] && kill -KILL "$hub_pid" 2>/dev/null
  kill_matching "$work/"
  [ -n "${KEEP_WORK-}" ] || rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/bin"
ln -s "$build/fake-engine" "$work/bin/vllm"
ln -s "$build/fake-engine" "$work/bin/fake-engine"
inventory=$src/examples/nodes/2x-a100-40g.json
port=$(free_port)
agent_port=$(free_port "$port")
gw_port=$(free_port "$port" "$agent_port")
node2_port=$(free_port "$port" "$agent_port" "$gw_port")
hub_port=$(free_port "$port" "$agent_port" "$gw_port" "$node2_port")
api_url=https://127.0.0.1:$port
data=$work/server

# --- the fake hub: HuggingFace's tree and resolve endpoints over $work/hub, with ranges ----------
make_distill_dir "$work/hub/e2e/tiny-qwen" 2 || fail "cannot write the hub's model"
cat >"$work/hub.py" <<'PY'
import hashlib, json, os, re, sys, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
root, port = sys.argv[1], int(sys.argv[2])
digests = {}
def sha(p):
    if p not in digests:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for b in iter(lambda: f.read(1 << 22), b""): h.update(b)
        digests[p] = h.hexdigest()
    return digests[p]
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def send(self, code, body, ctype="application/json"):
        self.send_response(code); self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def do_GET(self):
        path = urllib.parse.urlparse(self.path).path
        m = re.match(r"^/api/models/([^/]+/[^/]+)/tree/[^/]+$", path)
        if m:
            base = os.path.join(root, m.group(1)); out = []
            for dp, _, fs in os.walk(base):
                for f in sorted(fs):
                    p = os.path.join(dp, f); rel = os.path.relpath(p, base); size = os.path.getsize(p)
                    e = {"type": "file", "path": rel, "size": size}
                    if f.endswith(".safetensors"): e["lfs"] = {"oid": sha(p), "size": size}
                    out.append(e)
            return self.send(200, json.dumps(out).encode())
        m = re.match(r"^/([^/]+/[^/]+)/resolve/[^/]+/(.+)$", path)
        if not m: return self.send(404, b"{}")
        p = os.path.join(root, m.group(1), urllib.parse.unquote(m.group(2)))
        if not os.path.isfile(p): return self.send(404, b"{}")
        size = os.path.getsize(p); first, last = 0, size - 1; code = 200
        r = re.match(r"bytes=(\d+)-(\d*)$", self.headers.get("Range", ""))
        if r:
            first = int(r.group(1)); last = int(r.group(2)) if r.group(2) else size - 1
            last = min(last, size - 1); code = 206
        self.send_response(code); self.send_header("Content-Length", str(last - first + 1))
        if code == 206: self.send_header("Content-Range", "bytes %d-%d/%d" % (first, last, size))
        self.end_headers()
        with open(p, "rb") as f:
            f.seek(first); left = last - first + 1
            while left > 0:
                b = f.read(min(left, 1 << 20))
                if not b: break
                self.wfile.write(b); left -= len(b)
ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PY
python3 "$work/hub.py" "$work/hub" "$hub_port" >"$work/hub.log" 2>&1 &
hub_pid=$!
wait_for "the fake hub on port $hub_port" 20 curl -sf "http://127.0.0.1:$hub_port/api/models/e2e/tiny-qwen/tree/main"

# --- the server with its local agent --------------------------------------------------------------
start_with_stand_in "$inventory" --set "hub.huggingface_endpoint=http://127.0.0.1:$hub_port"
first_admin_login "$data" 'E2e-secret-9!'
[ -s "$data/models/.openstation-store" ] || fail "the server wrote no store marker in $data/models"
store_id=$(tr -d '[:space:]' <"$data/models/.openstation-store")

# --- download the model into the server's model store -------------------------------------------
expect 201 POST /api/v1/downloads '{"repo":"e2e/tiny-qwen","source":"huggingface","name":"tiny-qwen"}'
model_ready() {
  api GET /api/v1/models/tiny-qwen
  [ "$status" = 200 ] && [ "$(jbody .status)" = ready ]
}
wait_for "the download of tiny-qwen" 180 model_ready
model_id=$(jbody .id)
model_path=$(jbody .path)
[ -f "$model_path/model.safetensors" ] || fail "the model is not in the server's store: $(cat "$work/body")"

# --- the second node: its own data dir, always keeping its own copy ------------------------------
expect 201 POST /api/v1/join-tokens '{}'
join=$(jbody .token)
stand_in_engine_sets "$inventory"
fp=$(openssl x509 -in "$data/tls/server.crt" -noout -fingerprint -sha256 | sed 's/.*=//')
"$bin" --log-level info agent --server "$api_url" --server-fingerprint "sha256:$fp" \
  --token "$join" --data-dir "$work/node2" --name node2 --port "$node2_port" \
  --gpu-inventory "$inventory" --watch-wait 2 \
  --set "agent.heartbeat_interval=1s" --set "agent.model_sync=always" \
  --set "agent.model_sync_rate=100MiB" "${stand_in_sets[@]}" \
  >>"$work/node2.log" 2>&1 &
agent_pid=$!
node2_ready() {
  api GET /api/v1/nodes/node2
  [ "$status" = 200 ] && [ "$(jbody .status)" = ready ]
}
wait_for "node2 to be ready" 30 node2_ready

# --- an instance on node2: preparing with progress, then running from the node's copy ------------
expect 201 POST /api/v1/services '{"name":"q","model":"tiny-qwen","nodes":["node2"]}'
instance_of() {
  api GET /api/v1/services/q
  [ "$status" = 200 ] && [ "$(jbody '.instances | length')" -ge 1 ]
}
wait_for "an instance of q" 30 instance_of
inst=$(jbody '.instances[0].id')
saw_progress=
first_progress=
deadline=$((SECONDS + 180))
while :; do
  [ "$SECONDS" -lt "$deadline" ] || fail "instance $inst did not run within 180 s: $(cat "$work/body")"
  api GET "/api/v1/instances/$inst"
  state=$(jbody .state)
  if [ "$state" = preparing ] && [ "$(jbody '.progress.bytes_total // 0')" -gt 0 ]; then
    seen=$(jbody '"\(.progress.bytes_done)/\(.progress.bytes_total) \(.progress.percent)% \(.state_reason)"')
    [ -n "$first_progress" ] || first_progress=$seen
    saw_progress=$seen
    case "$(jbody .state_reason)" in "pulling model files from the server: "*) ;;
      *) fail "a preparing instance should say it pulls the model: $(cat "$work/body")" ;; esac
  fi
  [ "$state" = running ] && break
  case "$state" in failed|stopped|unhealthy) fail "instance $inst is $state: $(cat "$work/body"); engine log: $(tail -n 20 "$work"/node2/logs/*/*.log 2>/dev/null)" ;; esac
  sleep 0.1
done
[ -n "$saw_progress" ] || fail "instance $inst never showed preparing with progress (the pull was not observed)"
[ "$first_progress" != "$saw_progress" ] ||
  fail "the progress of the pull never moved: $saw_progress"
echo "observed while preparing: $first_progress ... $saw_progress"
copy=$work/node2/agent/models/$model_id
cmp -s "$copy/model.safetensors" "$model_path/model.safetensors" ||
  fail "the node's copy $copy/model.safetensors differs from the server's"
cmp -s "$copy/config.json" "$model_path/config.json" || fail "config.json was not pulled"
[ -f "$work/node2/agent/models/.complete/$model_id.json" ] || fail "no completion marker"
[ -z "$(find "$work/node2/agent/models/.staging" -name '*.part' 2>/dev/null)" ] || fail "partial files left"
pid=$(jbody .pid)
tr '\0' '\n' <"/proc/$pid/cmdline" | grep -qxF "$copy" ||
  fail "the engine does not run from the node's copy $copy: $(tr '\0' ' ' <"/proc/$pid/cmdline")"
tr '\0' '\n' <"/proc/$pid/cmdline" | grep -qxF "$model_path" &&
  fail "the engine still names the server's path: $(tr '\0' ' ' <"/proc/$pid/cmdline")"
pulled=$(grep -c "pulling model tiny-qwen" "$work/node2.log")
[ "$pulled" = 1 ] || fail "expected one pull in the agent log, found $pulled"

# --- a second instance on node2 reuses the copy -------------------------------------------------
mtime=$(stat -c %Y "$work/node2/agent/models/.complete/$model_id.json")
expect 200 PATCH /api/v1/services/q '{"replicas":2}'
running_count() {
  api GET /api/v1/services/q
  [ "$status" = 200 ] && [ "$(jbody '.instances | length')" = "$1" ] &&
    [ "$(jbody '[.instances[] | select(.state == "running")] | length')" = "$1" ]
}
wait_for "two running instances of q" 90 running_count 2
[ "$(grep -c "pulling model tiny-qwen" "$work/node2.log")" = 1 ] || fail "the second instance pulled the model again"
[ "$(stat -c %Y "$work/node2/agent/models/.complete/$model_id.json")" = "$mtime" ] ||
  fail "the completion marker was rewritten"

# --- the local node shares the store: no copy, the store's path as is ---------------------------
expect 200 GET /api/v1/nodes
local_node=$(jbody '[.items[] | select(.name != "node2")][0].name')
expect 201 POST /api/v1/services '{"name":"q-local","model":"tiny-qwen","nodes":["'"$local_node"'"]}'
local_running() {
  api GET /api/v1/services/q-local
  [ "$status" = 200 ] && [ "$(jbody '[.instances[] | select(.state == "running")] | length')" = 1 ]
}
wait_for "the local instance of q-local" 90 local_running
[ ! -e "$data/agent/models/$model_id" ] || fail "the local agent copied a model it shares with the server"
[ -f "$data/agent/models/.shared/$model_id.json" ] || fail "the local agent did not record the shared store"
lpid=$(jbody '.instances[0].pid')
tr '\0' '\n' <"/proc/$lpid/cmdline" | grep -qxF "$model_path" ||
  fail "the local engine does not run from the store's path: $(tr '\0' ' ' <"/proc/$lpid/cmdline")"
grep -q "$store_id" "$data/models/.openstation-store" || fail "the store id changed"
echo "PASS"

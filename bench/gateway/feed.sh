#!/usr/bin/env bash
# What following the control plane costs the server: the CPU time `openstation start` spends
# each second with many API keys stored, idle and while gateway replicas long-poll its snapshot
# (GET /api/v1/gateway/snapshot?wait_after=VERSION, what `openstation gateway --server` does).
# The embedded gateway rereads its snapshot source every second and each replica's wait did so
# every half second; this measures what that costs as keys grow.
#
#   bench/gateway/feed.sh BUILD_DIR [PEER_BUILD_DIR]
#
# With a peer build (an earlier binary), both are measured in the same run, alternating, and the
# report gives this build's CPU as a ratio of the peer's. Knobs: BENCH_FEED_KEYS (10000 keys of
# one admin), BENCH_FEED_REPLICAS (4 waiting replicas), BENCH_FEED_SECONDS (20 per measurement),
# BENCH_FEED_ROUNDS (3). Needs curl, jq (scripts/install-deps.sh).
set -u
builds=("$(realpath "${1:?usage: bench/gateway/feed.sh BUILD_DIR [PEER_BUILD_DIR]}")")
[ -n "${2:-}" ] && builds+=("$(realpath "$2")")
src=$(realpath "$(dirname "$0")/../..")
keys=${BENCH_FEED_KEYS:-10000}
replicas=${BENCH_FEED_REPLICAS:-4}
seconds=${BENCH_FEED_SECONDS:-20}
rounds=${BENCH_FEED_ROUNDS:-3}
for n in "$keys" "$replicas" "$seconds" "$rounds"; do
  case "$n" in
    '' | *[!0-9]*) echo "bench: BENCH_FEED_* must be whole numbers, not '$n'" >&2; exit 1 ;;
  esac
done
for tool in curl jq; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (scripts/install-deps.sh)" >&2; exit 1; }
done
for b in "${builds[@]}"; do
  [ -x "$b/openstation" ] || { echo "bench: $b/openstation is not built" >&2; exit 1; }
done

work=$(mktemp -d /tmp/os-bench-feed.XXXXXX)
source "$src/tests/e2e/lib.bash"  # free_port, wait_for, expect, jbody, first_admin_login, kill_groups
say() { echo "bench: $*" >&2; }
server_pid=
waiters=()
stop_waiters() {
  kill_groups "${waiters[@]}"
  waiters=()
}
cleanup() {
  stop_waiters
  [ -n "$server_pid" ] && kill -KILL "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

inventory=$src/examples/nodes/8x-a100-80g.json
port=$(free_port)
agent_port=$(free_port "$port")
gw_port=$(free_port "$port" "$agent_port")
api_url=https://127.0.0.1:$port

# One data dir for every build: the keys are made once. Each build runs on it in turn.
start_server() {  # BUILD
  "$1/openstation" --log-level warn start --data-dir "$work/data" --gpu-inventory "$inventory" \
    --port "$port" --agent-port "$agent_port" --gateway-port "$gw_port" >>"$work/server.log" 2>&1 &
  server_pid=$!
  wait_for "the server's /health" 60 curl -skf "$api_url/health"
}
stop_server() {
  kill -TERM "$server_pid" 2>/dev/null
  wait "$server_pid" 2>/dev/null
  server_pid=
}
# The process's CPU time in nanoseconds: its threads' schedstat (finer than /proc/PID/stat's ticks).
cpu_ns() { cat /proc/"$server_pid"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f\n", s}'; }

start_server "${builds[0]}"
first_admin_login "$work/data" 'Bench-secret-9!'
expect 201 POST /api/v1/keys '{"name":"replica"}'
replica_key=$(jbody .key)
say "making $keys API keys"
seq "$keys" | xargs -P 4 -I{} curl -sk -o /dev/null -X POST -H "Authorization: Bearer $token" \
  -H 'Content-Type: application/json' --data '{"name":"k{}"}' "$api_url/api/v1/keys"
stored=$(curl -sk -H "Authorization: Bearer $replica_key" "$api_url/api/v1/gateway/snapshot" | jq '.keys | length')
say "the snapshot holds $stored keys"
stop_server

results=$work/results
for r in $(seq "$rounds"); do
  for b in "${builds[@]}"; do
    start_server "$b"
    sleep 3  # start-up work done
    a=$(cpu_ns)
    sleep "$seconds"
    idle=$(( ($(cpu_ns) - a) / 1000 / seconds ))
    version=$(curl -sk -H "Authorization: Bearer $replica_key" "$api_url/api/v1/gateway/snapshot" | jq -r .version)
    for i in $(seq "$replicas"); do
      setsid bash -c "while :; do curl -sk -o /dev/null -H 'Authorization: Bearer $replica_key' \
        '$api_url/api/v1/gateway/snapshot?wait_after=$version&wait=300'; done" &
      waiters+=($!)
    done
    sleep 2
    a=$(cpu_ns)
    sleep "$seconds"
    waiting=$(( ($(cpu_ns) - a) / 1000 / seconds ))
    stop_waiters
    stop_server
    say "round $r, $b: idle $idle us/s, with $replicas waiting replicas $waiting us/s"
    echo "$r $b $idle $waiting" >>"$results"
  done
done

python3 - "$results" "$keys" "$replicas" "$seconds" "$rounds" "${builds[@]}" <<'PY'
import statistics, sys
path, keys, replicas, seconds, rounds, *builds = sys.argv[1:]
rows = [l.split() for l in open(path)]
def med(b, col):
    return statistics.median(int(r[col]) for r in rows if r[1] == b)
print("**The server following its keys** (%s API keys, %s waiting replicas, %s s per measurement,"
      " median of %s rounds; CPU time of `openstation start` per second):\n" % (keys, replicas, seconds, rounds))
print("| build | idle ms/s | with replicas waiting ms/s |")
print("|---|---|---|")
for b in builds:
    print("| %s | %.2f | %.2f |" % (b, med(b, 2) / 1000, med(b, 3) / 1000))
if len(builds) == 2:
    print("\nThis build ÷ the peer: idle %.3f, with replicas waiting %.3f." %
          (med(builds[0], 2) / max(1, med(builds[1], 2)), med(builds[0], 3) / max(1, med(builds[1], 3))))
PY

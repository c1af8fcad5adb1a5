#!/usr/bin/env bash
# bench/gateway/sse_burst.sh: the CPU an SSE event costs each proxy inside a burst, from kernel
# tracepoints (needs root and linux-perf). Against a set-up left running by
#   BENCH_SETUP_ONLY=/tmp/env.sh bench/gateway/run.sh BUILD_DIR &
# it streams through nginx, then the gateway (ROUNDS times), records the system calls of that
# proxy's threads, and prints for each measurement:
#   - the loadgen's p50 per event (engine emit stamp -> client arrival, µs);
#   - per event inside a burst: a wake-up of a proxy thread (a blocking epoll_wait that returned)
#     that relayed five or more events, from the wake-up to the next blocking wait, divided by
#     the sends in it (µs; p25, p50, p75). Streams that started together get their tokens at the
#     same moment, as from a batching engine, so the p50 event sits about a dozen events into
#     such a burst and this cost reaches the p50.
#
#   bench/gateway/sse_burst.sh ENV_FILE BUILD_DIR [ROUNDS (2)] [STREAMS (50)] [TOKENS (40)] [SECONDS (5)]
# shellcheck disable=SC2154  # the variables come from the sourced set-up file
set -u
env_file=${1:?usage: bench/gateway/sse_burst.sh ENV_FILE BUILD_DIR [ROUNDS] [STREAMS] [TOKENS] [SECONDS]}
build=${2:?usage: bench/gateway/sse_burst.sh ENV_FILE BUILD_DIR [ROUNDS] [STREAMS] [TOKENS] [SECONDS]}
rounds=${3:-2}
streams=${4:-50}
tokens=${5:-40}
seconds=${6:-5}
for tool in perf jq python3; do
  command -v "$tool" >/dev/null || { echo "sse_burst: needs $tool" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "sse_burst: tracepoints need root" >&2; exit 2; }
# shellcheck disable=SC1090  # the set-up file: url_*, sse_*, key, server_pid, nginx_pids, paced_body
. "$env_file" || exit 2
work=$(mktemp -d /tmp/os-sse-burst.XXXXXX)
trap 'rm -rf "$work"' EXIT
sed "s/\"max_tokens\":[0-9]*/\"max_tokens\":$tokens/" "$paced_body" >"$work/body.json"
events=syscalls:sys_enter_epoll_wait,syscalls:sys_exit_epoll_wait
events=$events,syscalls:sys_enter_sendto,syscalls:sys_enter_writev,syscalls:sys_enter_sendmsg

for r in $(seq "$rounds"); do
  for p in nginx gateway; do
    if [ "$p" = nginx ]; then
      pids=$(echo "$nginx_pids" | awk '{$1=""; print}' | xargs | tr ' ' ,)  # the workers
      url=$sse_nginx
      k=
    else
      pids=$server_pid
      url=$sse_gateway
      k=$key
    fi
    perf record -q -o "$work/$p.data" -e "$events" -p "$pids" -- sleep $((seconds + 1)) 2>/dev/null &
    rec=$!
    sleep 0.5
    "$build/os-loadgen" sse "$url" --key "$k" --body "$work/body.json" --streams "$streams" \
      --duration "$seconds" --label "$p" >"$work/$p.json"
    wait "$rec"
    perf script -i "$work/$p.data" -F tid,time,event,trace 2>/dev/null >"$work/$p.txt"
    python3 - "$work/$p.txt" "$p" "$r" "$(jq .event_p50_us "$work/$p.json")" <<'EOF'
import re, sys
path, name, rnd, p50 = sys.argv[1:5]
start, sends, blocking, per = {}, {}, {}, []
for line in open(path):
    f = line.split()
    if len(f) < 3:
        continue
    tid, t, ev = f[0], float(f[1].rstrip(':')), f[2]
    if 'sys_enter_epoll_wait' in ev:
        m = re.search(r'timeout: (0x[0-9a-f]+)', line)
        if m and int(m.group(1), 16) != 0:  # a blocking wait ends the burst
            if start.get(tid) is not None and sends[tid] >= 5:
                per.append((t - start[tid]) * 1e6 / sends[tid])
            start[tid] = None
    elif 'sys_exit_epoll_wait' in ev:
        if start.get(tid) is None:
            start[tid] = t
            sends[tid] = 0
    elif start.get(tid) is not None:
        sends[tid] += 1
per.sort()
q = lambda x: per[int(x * (len(per) - 1))] if per else float('nan')
print("round %s %-7s p50 per event %s µs; inside %d bursts, µs per event: p25 %.1f, p50 %.1f, p75 %.1f"
      % (rnd, name, p50, len(per), q(.25), q(.5), q(.75)))
EOF
  done
done

#!/usr/bin/env bash
# bench/gateway: the same load through three paths, in one run, against the same engines:
#   direct   the stand-in engine itself
#   nginx    Debian's nginx as a keep-alive reverse proxy to it (the peer)
#   gateway  OpenStation's gateway (`openstation start`: API key auth, routing, metering, call logs)
# Measures small non-streamed chat completions at a fixed rate (os-loadgen, open loop) and at
# saturation (wrk), the per-event latency of SSE streams (os-loadgen sse, against the engine's
# emit stamps), and the memory per open stream with N streams held open (VmRSS before and after).
# Prints a Markdown report (ratios against nginx) on stdout; progress goes to stderr.
#
#   bench/gateway/run.sh BUILD_DIR        (make bench-gateway builds build-release and runs this)
#
# BUILD_DIR holds openstation, fake-engine and os-loadgen (cmake -DOPENSTATION_BENCH=ON).
# Knobs (environment): BENCH_RATE (fixed rate, req/s, 400), BENCH_SECONDS (per measurement, 5),
# BENCH_ROUNDS (rounds of the fixed-rate and SSE tests, paths interleaved, 10), BENCH_SAT_ROUNDS
# (rounds of the saturation test, 16: nginx and the gateway in every round, the engine directly in
# the first three),
# BENCH_WRK_CONNECTIONS (32), BENCH_SSE_STREAMS (concurrent streams, 50; 0 skips the SSE test),
# BENCH_SSE_TOKENS_PER_SEC (20), BENCH_HOLD_STREAMS (10000; 0 skips the memory test), BENCH_THREADS (gateway threads =
# nginx workers = engine threads, 2), BENCH_LOGS (a directory that gets the logs at the end),
# BENCH_NGINX_LOG=1 (nginx writes a buffered access log, as the gateway writes a call log per
# request; off by default, the stricter comparison), BENCH_SETUP_ONLY=FILE (set up, write the URLs, key and pids to FILE, wait until killed: for
# profiling by hand), BENCH_GATEWAY_PRELOAD=LIB (LD_PRELOAD for openstation only: allocator experiments), BENCH_GATEWAY_WRAPPER=CMD (a command openstation runs under, e.g. "valgrind --tool=callgrind --instr-atstart=no": instructions per request, which the host's load does not move), BENCH_PROFILE=1 (perf record of the gateway under wrk in round 1: perf-report.log in the logs), BENCH_LOAD=N (a loaded host: N CPU-bound processes run beside every timed measurement, each BENCH_LOAD_CMD, by default a busy loop, at nice BENCH_LOAD_NICE, 0; stopped before the memory test). Needs wrk, nginx, curl, jq, python3 (scripts/install-deps.sh).
set -u
build=$(realpath "${1:?usage: bench/gateway/run.sh BUILD_DIR}")
src=$(realpath "$(dirname "$0")/../..")
bin=$build/openstation
engine=$build/fake-engine
loadgen=$build/os-loadgen
rate=${BENCH_RATE:-400}
seconds=${BENCH_SECONDS:-5}
rounds=${BENCH_ROUNDS:-10}
sat_rounds=${BENCH_SAT_ROUNDS:-16}
wrk_conns=${BENCH_WRK_CONNECTIONS:-32}
sse_streams=${BENCH_SSE_STREAMS:-50}
sse_rate=${BENCH_SSE_TOKENS_PER_SEC:-20}
hold_streams=${BENCH_HOLD_STREAMS:-10000}
threads=${BENCH_THREADS:-2}
load_n=${BENCH_LOAD:-0}
case "$load_n" in
  '' | *[!0-9]*) echo "bench: BENCH_LOAD must be a whole number of processes, not '$load_n'" >&2; exit 1 ;;
esac

for tool in wrk nginx curl jq python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (scripts/install-deps.sh)" >&2; exit 1; }
done
for f in "$bin" "$engine" "$loadgen"; do
  [ -x "$f" ] || { echo "bench: $f is not built (cmake -DOPENSTATION_BENCH=ON; make bench-gateway)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/os-bench-gateway.XXXXXX)
server_pid=
nginx_pid=
source "$src/tests/e2e/lib.bash"  # free_port, wait_for, api, expect, jbody, fail, kill_matching
say() { echo "bench: $*" >&2; }
load_pids=()
stop_load() {  # ends the BENCH_LOAD processes and everything they started
  kill_groups "${load_pids[@]}"
  load_pids=()
}

cleanup() {
  stop_load
  [ -n "$nginx_pid" ] && kill -TERM "$nginx_pid" 2>/dev/null
  [ -n "$server_pid" ] && kill -KILL "$server_pid" 2>/dev/null
  kill_matching "$work/" 2>/dev/null  # the engines, launched through $work/bin
  [ -n "${BENCH_LOGS:-}" ] && mkdir -p "$BENCH_LOGS" && cp "$work"/*.log "$work"/nginx/*.log "$BENCH_LOGS"/ 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# Every held stream costs the gateway two descriptors (client and engine side); the hard limit
# is the ceiling (raising it needs CAP_SYS_RESOURCE).
ulimit -n "$(ulimit -Hn)"
fd_limit=$(ulimit -n)
max_hold=$(((fd_limit - 600) / 2))
hold_note=
if [ "$hold_streams" -gt "$max_hold" ]; then
  hold_note="$hold_streams streams asked for; the open-file limit ($fd_limit, hard) allows $max_hold through one process"
  hold_streams=$max_hold
  say "$hold_note"
fi

# --- the engines: one binary, three behaviours chosen by the served name --------------------------
#   fast   answers at once (FAKE_ENGINE_TOKENS_PER_SEC=0): the small-request tests
#   paced  $sse_rate tokens/s, 40 tokens, stamped events: the SSE latency test
#   idle   one token every 5 s, stamped: streams held open for the memory test
mkdir -p "$work/bin" "$work/nginx"
chmod 755 "$work"  # nginx's workers run as nobody
cat >"$work/bin/vllm" <<EOF
#!/usr/bin/env bash
case " \$* " in
  *" --served-model-name paced "*) export FAKE_ENGINE_TOKENS_PER_SEC=$sse_rate FAKE_ENGINE_OUTPUT_TOKENS=40 FAKE_ENGINE_STAMP_EVENTS=1 ;;
  *" --served-model-name idle "*) export FAKE_ENGINE_TOKENS_PER_SEC=0.2 FAKE_ENGINE_OUTPUT_TOKENS=100000 FAKE_ENGINE_STAMP_EVENTS=1 ;;
  *) export FAKE_ENGINE_TOKENS_PER_SEC=0 ;;
esac
exec "$engine" vllm "\$@"
EOF
chmod +x "$work/bin/vllm"

inventory=$src/examples/nodes/8x-a100-80g.json
port=$(free_port)
agent_port=$(free_port "$port")
gw_port=$(free_port "$port" "$agent_port")
api_url=https://127.0.0.1:$port

say "starting openstation (gateway on $gw_port, $threads threads), log in $work/server.log"
${BENCH_GATEWAY_PRELOAD:+env LD_PRELOAD=$BENCH_GATEWAY_PRELOAD} ${BENCH_GATEWAY_WRAPPER:-} "$bin" --log-level warn start --data-dir "$work/data" --gpu-inventory "$inventory" \
  --port "$port" --agent-port "$agent_port" --gateway-port "$gw_port" \
  --set "agent.heartbeat_interval=1s" \
  --set "engines.vllm.command=$work/bin/vllm" \
  --set "engines.vllm.env.OPENSTATION_FAKE_GPU_INVENTORY=$inventory" \
  --set "engines.vllm.env.FAKE_ENGINE_THREADS=$threads" \
  >>"$work/server.log" 2>&1 &
server_pid=$!
wait_for "the server's /health" 60 curl -skf "$api_url/health"
first_admin_login "$work/data" 'Bench-secret-9!'
expect 201 POST /api/v1/keys '{"name":"bench"}'
key=$(jbody .key)

node_ready() {
  api GET /api/v1/nodes
  [ "$status" = 200 ] && [ "$(jbody '.items[0].status')" = ready ]
}
wait_for "the local node" 30 node_ready
node=$(jbody '.items[0].name')
make_distill_dir "$work/models/DeepSeek-R1-Distill-Qwen-1.5B" || fail "cannot write the model files"
model=deepseek-r1-distill-qwen-1.5b
expect 201 POST /api/v1/models "{\"name\":\"$model\",\"path\":\"$work/models/DeepSeek-R1-Distill-Qwen-1.5B\",\"node\":\"$node\"}"
model_ready() {
  api GET "/api/v1/models/$model"
  [ "$status" = 200 ] && [ "$(jbody .status)" = ready ]
}
wait_for "the model import" 30 model_ready
declare -A engine_port
for svc in fast paced idle; do
  expect 201 POST /api/v1/services \
    "{\"name\":\"$svc\",\"model\":\"$model\",\"engine\":\"vllm\",\"extra_args\":\"--tensor-parallel-size 1\"}"
done
svc_running() {
  api GET "/api/v1/services/$1"
  [ "$status" = 200 ] && [ "$(jbody '[.instances[] | select(.state == "running")] | length')" = 1 ]
}
for svc in fast paced idle; do
  wait_for "service $svc running" 90 svc_running "$svc"
  engine_port[$svc]=$(jbody '.instances[0].endpoint' | sed 's/.*://')
  [ "${engine_port[$svc]}" -gt 0 ] 2>/dev/null || fail "no engine port for $svc: $(cat "$work/body")"
done
gateway_ready() {
  curl -sf -H "Authorization: Bearer $key" "http://127.0.0.1:$gw_port/v1/models" >"$work/models.json" &&
    [ "$(jq '.data | length' "$work/models.json")" = 3 ]
}
wait_for "the gateway to route fast, paced and idle" 30 gateway_ready
# /v1/models lists a service before the gateway's route table (refreshed from the store every
# second) has its running instance: until then a request gets 503 no_healthy_instance. Wait for
# one to go through, then for one more refresh, which sees all three instances running.
gateway_routes() {
  curl -sf -H 'Content-Type: application/json' -H "Authorization: Bearer $key" \
    --data "{\"model\":\"fast\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":1}" \
    "http://127.0.0.1:$gw_port/v1/chat/completions" >/dev/null
}
wait_for "the gateway to route to the engine" 30 gateway_routes
sleep 2

# --- nginx: the peer, configured for a fair fight ---------------------------------------------------
# As many workers as the gateway has I/O threads; keep-alive to the engine with as many idle
# connections per worker as the gateway keeps per instance (64); HTTP/1.1 upstream; no buffering
# (SSE passes event by event); reuseport, so both workers take their share of 10,000 held
# connections (the gateway's threads share one acceptor); no access log (the gateway's call logs go to SQLite off the request
# path).
declare -A nginx_port
for svc in fast paced idle; do nginx_port[$svc]=$(free_port "${nginx_port[@]}"); done
{
  echo "worker_processes $threads;"
  echo "worker_rlimit_nofile $fd_limit;"
  echo "pid $work/nginx/nginx.pid;"
  echo "error_log $work/nginx/error.log warn;"
  echo "daemon off;"
  echo "events { worker_connections $fd_limit; }"
  echo "http {"
  if [ -n "${BENCH_NGINX_LOG:-}" ]; then  # nginx logs every request too, buffered like the call logs
    echo "  access_log $work/nginx/access.log combined buffer=64k flush=1s;"
  else
    echo "  access_log off;"
  fi
  echo "  client_body_temp_path $work/nginx/body; proxy_temp_path $work/nginx/proxy;"
  echo "  fastcgi_temp_path $work/nginx/fcgi; uwsgi_temp_path $work/nginx/uwsgi; scgi_temp_path $work/nginx/scgi;"
  echo "  keepalive_requests 10000000; keepalive_timeout 75s;"
  for svc in fast paced idle; do
    echo "  upstream $svc { server 127.0.0.1:${engine_port[$svc]}; keepalive 64; keepalive_requests 10000000; }"
    echo "  server {"
    echo "    listen 127.0.0.1:${nginx_port[$svc]} backlog=4096 reuseport;"
    echo "    location / {"
    echo "      proxy_pass http://$svc; proxy_http_version 1.1; proxy_set_header Connection \"\";"
    echo "      proxy_buffering off; proxy_request_buffering off; proxy_read_timeout 600s;"
    echo "    }"
    echo "  }"
  done
  echo "}"
} >"$work/nginx/nginx.conf"
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" >>"$work/nginx.log" 2>&1 &
nginx_pid=$!
wait_for "nginx" 10 curl -sf "http://127.0.0.1:${nginx_port[fast]}/v1/models"

# url PATH SERVICE: where each path sends a service's requests; key PATH: its API key.
url() {
  case $1 in
    direct) echo "http://127.0.0.1:${engine_port[$2]}/v1/chat/completions" ;;
    nginx) echo "http://127.0.0.1:${nginx_port[$2]}/v1/chat/completions" ;;
    gateway) echo "http://127.0.0.1:$gw_port/v1/chat/completions" ;;
  esac
}
key_for() { [ "$1" = gateway ] && echo "$key" || echo ""; }
paths="direct nginx gateway"
# The paths of round R, in the order they are measured: the two proxies swap places every round,
# so neither always runs right after the other (a host whose load drifts, or a run that leaves
# work behind, would otherwise favour one of them).
round_paths() { if [ $(($1 % 2)) -eq 1 ]; then echo "direct nginx gateway"; else echo "direct gateway nginx"; fi; }

body() {  # body SERVICE STREAM
  echo "{\"model\":\"$1\",\"messages\":[{\"role\":\"user\",\"content\":\"Say hello in four words.\"}],\"max_tokens\":4,\"stream\":$2}"
}
body fast false >"$work/fast.json"
body paced true >"$work/paced.json"
echo "{\"model\":\"idle\",\"messages\":[{\"role\":\"user\",\"content\":\"hold\"}],\"stream\":true}" >"$work/idle.json"
for p in $paths; do  # every path answers before anything is measured
  auth=()
  [ "$p" = gateway ] && auth=(-H "Authorization: Bearer $key")
  code=$(curl -s -o "$work/first.out" -w '%{http_code}' -H 'Content-Type: application/json' \
    "${auth[@]}" --data @"$work/fast.json" "$(url "$p" fast)")
  [ "$code" = 200 ] || fail "a chat completion through $p failed ($code): $(head -c 400 "$work/first.out")"
done
results=$work/results.jsonl
if [ -n "${BENCH_SETUP_ONLY:-}" ]; then  # for profiling by hand: keep everything up until killed
  {
    for p in $paths; do echo "url_$p=$(url "$p" fast)"; echo "sse_$p=$(url "$p" paced)"; done
    echo "key=$key"
    echo "server_pid=$server_pid"
    echo "nginx_pids=\"$nginx_pid $(pgrep -P "$nginx_pid" | tr "\n" " ")\""
    echo "body=$work/fast.json"
    echo "paced_body=$work/paced.json"
  } >"$BENCH_SETUP_ONLY"
  say "set up; the URLs, key and pids are in $BENCH_SETUP_ONLY; waiting until killed"
  while :; do sleep 3600; done
fi

# rss_kib PID...: the summed VmRSS of the processes.
rss_kib() {
  local total=0 pid v
  for pid in "$@"; do
    v=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}
nginx_pids() { echo "$nginx_pid" $(pgrep -P "$nginx_pid"); }  # the master and its workers

cpu_load() { cut -d' ' -f1 /proc/loadavg; }

# --- a loaded host (BENCH_LOAD=N): N CPU-bound processes beside the timed measurements -------------
# Each runs in a session of its own, so that stop_load also ends what its command started.
load_cmd=${BENCH_LOAD_CMD:-while :; do :; done}
if [ "$load_n" -gt 0 ]; then
  say "loading the host: $load_n × '$load_cmd' at nice ${BENCH_LOAD_NICE:-0}"
  for _ in $(seq "$load_n"); do
    setsid nice -n "${BENCH_LOAD_NICE:-0}" bash -c "$load_cmd" >/dev/null 2>&1 </dev/null &
    load_pids+=($!)
  done
fi

# --- small requests: fixed rate (open loop), then saturation (wrk), paths interleaved -------------
for r in $(seq 1 "$rounds"); do
  for p in $(round_paths "$r"); do
    say "round $r: $p at $rate req/s for ${seconds}s"
    out=$("$loadgen" rate "$(url "$p" fast)" --key "$(key_for "$p")" --body "$work/fast.json" \
      --rate "$rate" --duration "$seconds" --connections 64 --warmup 1 --label "$p") ||
      say "os-loadgen rate through $p reported failures: $out"
    echo "$out" | jq -c --arg r "$r" --arg load "$(cpu_load)" '. + {round: ($r|tonumber), load: $load}' >>"$results"
  done
done
# Saturation moves by a few per cent from one measurement to the next on a shared host, about as
# much as the difference being measured: many short rounds, the two proxies in every round (in
# alternating order), so the report can give each round's ratio and a confidence interval.
for r in $(seq 1 "$sat_rounds"); do
  for p in $(round_paths "$r"); do
    [ "$p" = direct ] && [ "$r" -gt 3 ] && continue  # the engine's own rate: a reference only
    say "round $r: $p saturated by wrk ($wrk_conns connections, ${seconds}s)"
    perf_pid=
    if [ -n "${BENCH_PROFILE:-}" ] && [ "$p" = gateway ] && [ "$r" = 1 ]; then
      perf record -g -o "$work/perf.data" -p "$server_pid" -- sleep "$seconds" >/dev/null 2>&1 &
      perf_pid=$!
    fi
    BENCH_BODY_FILE=$work/fast.json BENCH_KEY=$(key_for "$p") \
      wrk -t1 -c"$wrk_conns" -d"${seconds}s" --latency -s "$src/bench/gateway/post.lua" \
      "$(url "$p" fast)" >"$work/wrk.txt" 2>&1
    if [ -n "$perf_pid" ]; then
      wait "$perf_pid"
      perf report -i "$work/perf.data" --no-children --percent-limit 0.7 --stdio -g none \
        >"$work/perf-report.log" 2>&1
      perf report -i "$work/perf.data" --children --sort symbol --percent-limit 3 --stdio \
        -g none >"$work/perf-children.log" 2>&1
    fi
    python3 - "$work/wrk.txt" "$p" "$r" "$(cpu_load)" >>"$results" <<'PY'
import json, re, sys
text = open(sys.argv[1]).read()
def us(v):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", v)
    f = {"us": 1, "ms": 1e3, "s": 1e6, "m": 6e7}[m.group(2)]
    return round(float(m.group(1)) * f)
out = {"mode": "wrk", "label": sys.argv[2], "round": int(sys.argv[3]), "load": sys.argv[4]}
m = re.search(r"Requests/sec:\s+([\d.]+)", text)
out["rps"] = float(m.group(1)) if m else 0.0
for q in ("50", "90", "99"):
    m = re.search(r"^\s+%s(?:\.000)?%%\s+(\S+)" % q, text, re.M)
    out["latency_p%s_us" % q] = us(m.group(1)) if m else None
m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
out["non_2xx"] = int(m.group(1)) if m else 0
m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
out["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
print(json.dumps(out))
PY
  done
done

# --- SSE: added latency per event -------------------------------------------------------------------
# As many rounds as the fixed-rate test, paths interleaved: one sample of a few hundred
# microseconds moves by as much as the difference being measured, so the report compares the
# proxies round by round as well as by the medians.
for r in $(seq "$rounds"); do
  for p in $(round_paths "$r"); do
    [ "$sse_streams" -gt 0 ] || break 2
    say "$p: $sse_streams concurrent streams at $sse_rate tokens/s for ${seconds}s (round $r)"
    out=$("$loadgen" sse "$(url "$p" paced)" --key "$(key_for "$p")" --body "$work/paced.json" \
      --streams "$sse_streams" --duration "$seconds" --label "$p") ||
      say "os-loadgen sse through $p reported failures: $out"
    echo "$out" | jq -c --arg r "$r" --arg load "$(cpu_load)" '. + {round: ($r|tonumber), load: $load}' >>"$results"
  done
done

# --- memory: N open streams through each proxy ------------------------------------------------------
engine_running() {  # requests the idle engine is still serving
  curl -sf "http://127.0.0.1:${engine_port[idle]}/metrics" |
    awk '/^vllm:num_requests_running/ {print int($2)}'
}
engine_idle() { [ "$(engine_running)" = 0 ]; }
hold() {  # hold PATH PID...: holds $hold_streams streams through PATH, prints the RSS growth
  local p=$1
  shift
  rm -f "$work/ready" "$work/release"
  wait_for "the idle engine to finish earlier streams" 60 engine_idle
  sleep 1
  local before
  before=$(rss_kib "$@")
  "$loadgen" hold "$(url "$p" idle)" --key "$(key_for "$p")" --body "$work/idle.json" \
    --streams "$hold_streams" --parallel 256 --timeout 300 --ready-file "$work/ready" \
    --release-file "$work/release" --label "$p" >"$work/hold.json" &
  local lg=$!
  local deadline=$((SECONDS + 240))
  while [ ! -f "$work/ready" ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.5; done
  sleep 2  # let the first timed events pass through
  local during
  during=$(rss_kib "$@")
  touch "$work/release"
  wait "$lg"
  local open
  open=$(jq .open "$work/hold.json")
  jq -c --argjson b "$before" --argjson d "$during" \
    '. + {rss_before_kib: $b, rss_during_kib: $d,
          bytes_per_stream: (if .open > 0 then (($d - $b) * 1024 / .open | floor) else null end)}' \
    "$work/hold.json" >>"$results"
  say "$p: $open streams open, RSS $before KiB → $during KiB"
}
stop_load  # memory is not timed
if [ "$hold_streams" -gt 0 ]; then
  say "holding $hold_streams streams through nginx"
  hold nginx $(nginx_pids)
  say "holding $hold_streams streams through the gateway"
  hold gateway "$server_pid"
fi

# --- the report ---------------------------------------------------------------------------------------
# Each target is judged on the rounds: in every round the two proxies ran back to back, so a
# round's ratio (or difference) cancels most of what the host was doing then. The report gives the
# median and the mean of the rounds with a 95 % confidence interval (Student's t), and says a target
# is met only when the whole interval is on the right side.
python3 - "$results" "$rate" "$seconds" "$rounds" "$wrk_conns" "$sse_streams" "$sse_rate" \
  "$threads" "$(nproc)" "${hold_note:-}" "${BENCH_NGINX_LOG:+on}" "$sat_rounds" \
  "$load_n" "$load_cmd" "${BENCH_LOAD_NICE:-0}" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rate, seconds, rounds, conns, sse_streams, sse_rate, threads, cpus, note = sys.argv[2:11]
nginx_log = sys.argv[11] == "on"
sat_rounds = sys.argv[12]
load_n, load_cmd, load_nice = int(sys.argv[13]), sys.argv[14], sys.argv[15]
paths = ["direct", "nginx", "gateway"]
def pick(mode, path):
    return [r for r in rows if r["mode"] == mode and r["label"] == path]
def med(mode, path, key):
    vals = [r[key] for r in pick(mode, path) if r.get(key) is not None]
    return statistics.median(vals) if vals else None
def ratio(a, b):
    return "—" if a is None or b is None or b <= 0 else "%.2f" % (a / b)
def ms(us):
    return "—" if us is None else "%.2f" % (us / 1000)
def per_round(mode, key, f):
    """f(gateway's value, nginx's value) for each round that has both, in round order."""
    by = {}
    for r in pick(mode, "nginx") + pick(mode, "gateway"):
        if r.get(key) is not None and "round" in r:
            by.setdefault(r["round"], {})[r["label"]] = r[key]
    return [(n, f(v["gateway"], v["nginx"])) for n, v in sorted(by.items())
            if "gateway" in v and "nginx" in v and v["nginx"] > 0]
T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060,
        2.056, 2.052, 2.048, 2.045, 2.042]
def interval(vals):
    """(mean, low, high): the mean and its 95 % confidence interval; None with fewer than 2."""
    if len(vals) < 2:
        return None
    m = statistics.mean(vals)
    t = T975[len(vals) - 2] if len(vals) - 2 < len(T975) else 1.96
    h = t * statistics.stdev(vals) / len(vals) ** 0.5
    return m, m - h, m + h
verdicts = []
def judge(target, vals, fmt, bound, want_above):
    """One line on `vals` (per-round figures) against `bound`, and the verdict for the summary."""
    if not vals:
        verdicts.append((target, "not measured"))
        return
    iv = interval(vals)
    line = "median %s" % (fmt % statistics.median(vals))
    if iv is None:
        verdict = "one round only: no interval"
    else:
        m, lo, hi = iv
        line += "; mean %s, 95 %% CI %s to %s (%d rounds)" % (fmt % m, fmt % lo, fmt % hi, len(vals))
        if (lo >= bound) if want_above else (hi <= bound):
            verdict = "**met** (the whole interval)"
        elif (hi < bound) if want_above else (lo > bound):
            verdict = "**not met** (the whole interval)"
        else:
            verdict = "not told apart from nginx's (the interval spans %s)" % (fmt % bound)
    print("Per round, " + line + ": " + verdict + ".")
    verdicts.append((target, "%s — mean %s" % (verdict, fmt % iv[0]) if iv else verdict))
print("Machine: %s CPUs; gateway threads = nginx workers = engine threads = %s; nginx access log: %s"
      " (the gateway writes a call log per request either way)." % (
          cpus, threads, "on, buffered" if nginx_log else "off"))
if load_n > 0:
    print()
    print("Loaded host: %d × `%s` at nice %s beside every timed measurement (BENCH_LOAD)."
          % (load_n, load_cmd, load_nice))
print()
print("**Small chat completions at a fixed rate** (%s req/s open loop, %s s, median of %s rounds;"
      " latency counted from when each request was due):" % (rate, seconds, rounds))
print()
print("| path | achieved req/s | errors | p50 ms | p99 ms | p50 vs nginx | p99 vs nginx |")
print("|---|---|---|---|---|---|---|")
for p in paths:
    errs = sum(r["non_2xx"] + r["failed"] for r in pick("rate", p))
    print("| %s | %.0f | %d | %s | %s | %s | %s |" % (
        p, med("rate", p, "achieved_rps") or 0, errs, ms(med("rate", p, "latency_p50_us")),
        ms(med("rate", p, "latency_p99_us")),
        ratio(med("rate", p, "latency_p50_us"), med("rate", "nginx", "latency_p50_us")),
        ratio(med("rate", p, "latency_p99_us"), med("rate", "nginx", "latency_p99_us"))))
print()
rate_rounds = per_round("rate", "latency_p50_us", lambda g, n: g / n)
print("Gateway p50 ÷ nginx p50 by round: " + ", ".join("%.2f" % v for _, v in rate_rounds) + ".")
judge("fixed-rate p50 ≤ nginx's", [v for _, v in rate_rounds], "%.3f", 1.0, False)
print()
print("**Saturation** (wrk, 1 thread, %s connections, %s s, %s rounds; the engine directly in the first"
      " three; medians):" % (conns, seconds, sat_rounds))
print()
print("| path | req/s | errors | p50 ms | p99 ms | req/s vs nginx | p50 vs nginx |")
print("|---|---|---|---|---|---|---|")
for p in paths:
    errs = sum(r["non_2xx"] + r["socket_errors"] for r in pick("wrk", p))
    print("| %s | %.0f | %d | %s | %s | %s | %s |" % (
        p, med("wrk", p, "rps") or 0, errs, ms(med("wrk", p, "latency_p50_us")),
        ms(med("wrk", p, "latency_p99_us")),
        ratio(med("wrk", p, "rps"), med("wrk", "nginx", "rps")),
        ratio(med("wrk", p, "latency_p50_us"), med("wrk", "nginx", "latency_p50_us"))))
print()
sat = per_round("wrk", "rps", lambda g, n: g / n)
print("Gateway ÷ nginx req/s by round (odd rounds nginx first): " +
      ", ".join("%.3f" % v for _, v in sat) + ".")
judge("saturation req/s ≥ nginx's", [v for _, v in sat], "%.3f", 1.0, True)
print()
direct50 = med("sse", "direct", "event_p50_us")
direct99 = med("sse", "direct", "event_p99_us")
print("**SSE per-event latency** (%s concurrent streams, %s tokens/s each, %s s, median of %s rounds;"
      " engine emit stamp → client arrival; *added* = minus the direct path):"
      % (sse_streams, sse_rate, seconds, rounds))
print()
print("| path | events | p50 ms | p99 ms | added p50 ms | added p99 ms | added p50 vs nginx |")
print("|---|---|---|---|---|---|---|")
added = {}
for p in paths:
    p50, p99 = med("sse", p, "event_p50_us"), med("sse", p, "event_p99_us")
    a50 = None if p50 is None or direct50 is None else p50 - direct50
    a99 = None if p99 is None or direct99 is None else p99 - direct99
    added[p] = a50
    ev = sum(r["events"] for r in pick("sse", p))
    print("| %s | %d | %s | %s | %s | %s | %s |" % (
        p, ev, ms(p50), ms(p99), ms(a50) if p != "direct" else "—",
        ms(a99) if p != "direct" else "—",
        ratio(a50, added.get("nginx")) if p == "gateway" else "—"))
print()
# The two proxies' added latencies differ by their p50s' difference: the direct path cancels, and
# a difference stays defined where a ratio of two small numbers does not.
sse_rounds = per_round("sse", "event_p50_us", lambda g, n: (g - n) / 1000)
print("Gateway p50 − nginx p50 per event by round, ms: " +
      ", ".join("%+.3f" % v for _, v in sse_rounds) + ".")
judge("SSE added p50 ≤ nginx's (difference, ms)", [v for _, v in sse_rounds], "%+.3f", 0.0, False)
print()
print("**Open streams** (held through the proxy; proxy VmRSS with the streams open minus before):")
print()
print("| path | streams open | RSS before MiB | RSS during MiB | bytes per stream |")
print("|---|---|---|---|---|")
for p in ("nginx", "gateway"):
    for r in pick("hold", p):
        print("| %s | %d of %d | %.1f | %.1f | %s |" % (
            p, r["open"], r["requested"], r["rss_before_kib"] / 1024, r["rss_during_kib"] / 1024,
            r["bytes_per_stream"]))
if note:
    print()
    print("Note: " + note + ".")
print()
print("**Targets, judged on the rounds:**")
print()
for target, verdict in verdicts:
    print("- %s: %s" % (target, verdict))
print()
print("Load average during each measurement (1 min): " + ", ".join(
    "%s/%s %s" % (r["mode"], r["label"], r.get("load", "?")) for r in rows))
PY

#!/usr/bin/env bash
# scripts/gpu-check.sh against a fake nvidia-smi: the nvidia-smi probe of `openstation agent
# inventory` must agree with the tool on every field (PASS, exit 0), including a GPU that fell off
# the bus and a process holding memory; a different inventory must be caught (FAIL, exit 1).
# Usage: gpu_check.sh OPENSTATION_BINARY SOURCE_DIR
set -euo pipefail
bin=$1
src=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/e2e-gpu-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin"

cat >"$work/bin/nvidia-smi" <<'PY'
#!/usr/bin/env python3
# A fake nvidia-smi: two H200s and one GPU that fell off the bus; answers the --query-gpu and
# --query-compute-apps forms both tools use, and the plain header.
import sys
gpus = [
    {"index": "0", "name": "NVIDIA H200", "uuid": "GPU-11111111-2222-3333-4444-555555555555",
     "memory.total": "143771", "memory.used": "20480", "memory.free": "123291", "compute_cap": "9.0",
     "driver_version": "570.86.15", "utilization.gpu": "37", "pci.bus_id": "00000000:18:00.0"},
    {"index": "2", "name": "NVIDIA H200", "uuid": "GPU-66666666-7777-8888-9999-000000000000",
     "memory.total": "143771", "memory.used": "0", "memory.free": "143771", "compute_cap": "9.0",
     "driver_version": "570.86.15", "utilization.gpu": "[N/A]", "pci.bus_id": "00000000:5D:00.0"},
]
apps = [{"gpu_uuid": gpus[0]["uuid"], "pid": "4242", "process_name": "python3",
         "used_memory": "20000"}]
lost = "Unable to determine the device handle for GPU0000:3B:00.0: Unknown Error"
args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
units = {"memory.total": " MiB", "memory.used": " MiB", "memory.free": " MiB", "used_memory": " MiB",
         "utilization.gpu": " %"}
def emit(rows, fields):
    fmt = args.get("--format", "csv")
    if "noheader" not in fmt:
        print(", ".join(fields))
    for r in rows:
        print(", ".join(r[f] + ("" if "nounits" in fmt or r[f].startswith("[") else units.get(f, ""))
                        for f in fields))
if "--query-gpu" in args:
    fields = args["--query-gpu"].split(",")
    unknown = [f for f in fields if f not in gpus[0]]
    if unknown:
        print('Field "%s" is not a valid field to query.' % unknown[0]); sys.exit(2)
    print(lost)
    emit(gpus, fields)
    sys.exit(15)
if "--query-compute-apps" in args:
    emit(apps, args["--query-compute-apps"].split(","))
    sys.exit(0)
print("| NVIDIA-SMI 570.86.15    Driver Version: 570.86.15    CUDA Version: 12.8     |")
PY
chmod +x "$work/bin/nvidia-smi"
export PATH="$work/bin:$PATH"

echo "== matching inventory: expect PASS"
out=$(bash "$src/scripts/gpu-check.sh" --openstation "$bin" -- --probe nvidia-smi --data-dir "$work") || {
  echo "$out"; echo "FAIL: gpu-check did not pass"; exit 1; }
echo "$out"
grep -q "RESULT: PASS" <<<"$out"
grep -q "pid 4242 memory_mib" <<<"$out"
grep -q "unhealthy GPUs" <<<"$out"
grep -Eq "^all +GPU count +3 +3 +PASS" <<<"$out"

echo "== --markdown"
out=$(bash "$src/scripts/gpu-check.sh" --openstation "$bin" --markdown -- --probe nvidia-smi \
  --data-dir "$work")
grep -q '^| GPU 0 | uuid |' <<<"$out"

echo "== a different inventory: expect FAIL"
cat >"$work/other.json" <<'JSON'
{"name": "x", "type": "gpu", "cpu_cores": 1, "memory_mib": 1024, "disk_free_gib": 1,
 "gpus": [{"index": 0, "name": "NVIDIA H200", "uuid": "GPU-wrong", "memory_total_mib": 143771,
           "memory_used_mib": 0, "compute_capability": "9.0"}]}
JSON
set +e
out=$(bash "$src/scripts/gpu-check.sh" --openstation "$bin" -- --gpu-inventory "$work/other.json")
rc=$?
set -e
echo "$out"
[[ $rc -eq 1 ]] || { echo "FAIL: expected exit 1, got $rc"; exit 1; }
grep -Eq "^GPU 0 +uuid +GPU-wrong +GPU-1111.* +FAIL" <<<"$out"

echo "== no nvidia-smi: exit 2 with a reason"
set +e
PATH=/usr/bin:/bin bash "$src/scripts/gpu-check.sh" --openstation "$bin" --nvidia-smi /nonexistent/nvidia-smi 2>"$work/err"
rc=$?
set -e
[[ $rc -eq 2 ]] && grep -q "not found" "$work/err"
echo "gpu_check: ok"

#!/usr/bin/env bash
# gpu-check.sh — compare `openstation agent inventory --json` with nvidia-smi, field by field, on a
# machine with NVIDIA GPUs, and print a PASS/FAIL table.
#
# Usage:
#   scripts/gpu-check.sh [--openstation BIN] [--nvidia-smi BIN] [--mem-tolerance MIB]
#                        [--util-tolerance PERCENT] [--markdown] [-- ARGS FOR THE INVENTORY]
#
#   --openstation BIN     the binary to check (default: build/openstation next to this script's
#                         repository, else `openstation` on PATH)
#   --nvidia-smi BIN      the reference tool (default: nvidia-smi on PATH)
#   --mem-tolerance MIB   how far memory.used and per-process memory may differ (default 256):
#                         both tools sample at slightly different moments
#   --util-tolerance PCT  how far utilization.gpu may differ (default 15 points)
#   --markdown            print the table as Markdown, ready to paste into docs/agent.md
#   -- ARGS               passed to `openstation agent inventory`, e.g. `-- --probe nvidia-smi`
#
# Needs only bash and python3. Exit status: 0 all PASS, 1 some FAIL, 2 the check could not run.
# nvidia-smi is sampled before and after the inventory; values that change with load (memory
# used, utilization) pass when they are within tolerance of either sample.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
openstation=""
smi=nvidia-smi
mem_tol=256
util_tol=15
markdown=0
extra=()

die() { echo "gpu-check: $*" >&2; exit 2; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --openstation) openstation=${2:?--openstation needs a path}; shift 2 ;;
    --nvidia-smi) smi=${2:?--nvidia-smi needs a path}; shift 2 ;;
    --mem-tolerance) mem_tol=${2:?--mem-tolerance needs MiB}; shift 2 ;;
    --util-tolerance) util_tol=${2:?--util-tolerance needs a number}; shift 2 ;;
    --markdown) markdown=1; shift ;;
    -h|--help) sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --) shift; extra=("$@"); break ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

if [[ -z "$openstation" ]]; then
  if [[ -x "$here/../build/openstation" ]]; then
    openstation="$here/../build/openstation"
  else
    openstation=$(command -v openstation) || die "openstation not found: build it or pass --openstation BIN"
  fi
fi
[[ -x "$openstation" ]] || die "$openstation is not executable"
command -v python3 >/dev/null || die "python3 is required"
command -v "$smi" >/dev/null || die "$smi not found: this check needs a machine with the NVIDIA driver"

work=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX") || die "cannot create a temp dir"
trap 'rm -rf "$work"' EXIT

fields=index,name,uuid,memory.total,memory.used,compute_cap,driver_version,utilization.gpu,pci.bus_id
sample_gpus() {  # $1: output file; the fields asked for go to $1.fields. Old drivers (< R510)
                 # lack compute_cap: retry without it.
  echo "$fields" >"$1.fields"
  if ! "$smi" --query-gpu="$fields" --format=csv,noheader,nounits >"$1" 2>&1; then
    if grep -q 'compute_cap' "$1"; then
      echo "${fields/compute_cap,/}" >"$1.fields"
      "$smi" --query-gpu="${fields/compute_cap,/}" --format=csv,noheader,nounits >"$1" 2>&1 || true
    fi
  fi
}

sample_gpus "$work/smi-before.csv"
"$openstation" agent inventory --json "${extra[@]}" >"$work/inventory.json" 2>"$work/inventory.err"
inv_rc=$?
sample_gpus "$work/smi-after.csv"
echo gpu_uuid,pid,process_name,used_memory >"$work/apps.csv.fields"
"$smi" --query-compute-apps=gpu_uuid,pid,process_name,used_memory --format=csv,noheader,nounits \
  >"$work/apps.csv" 2>&1 || true
"$smi" >"$work/header.txt" 2>&1 || true

if [[ $inv_rc -ne 0 ]]; then
  echo "gpu-check: '$openstation agent inventory --json ${extra[*]}' exited with $inv_rc:" >&2
  cat "$work/inventory.err" "$work/inventory.json" >&2
  exit 2
fi

python3 - "$work" "$mem_tol" "$util_tol" "$markdown" "$openstation" <<'PY'
import csv, json, os, re, socket, sys, datetime

work, mem_tol, util_tol, markdown, binary = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1", sys.argv[5]
LOST = re.compile(r"Unable to determine the device handle for GPU\s*([0-9A-Fa-f:.]+)")
NA = {"", "[N/A]", "N/A", "[Not Supported]", "[Insufficient Permissions]", "[Unknown]"}

def read(name):
    with open(os.path.join(work, name), errors="replace") as f:
        return f.read()

def parse_csv(name):
    """nvidia-smi CSV (noheader, nounits) read by position with the fields asked for; returns
    (rows as dicts keyed by field name, bus ids of GPUs nvidia-smi cannot open, other lines)."""
    fields = read(name + ".fields").strip().split(",")
    lost, rows, other = [], [], []
    for line in read(name).splitlines():
        m = LOST.search(line)
        if m:
            lost.append(m.group(1).rstrip(":"))
            continue
        if not line.strip():
            continue
        r = [v.strip() for v in line.split(",")]
        if len(r) > len(fields):  # a name with a comma in it
            extra = len(r) - len(fields)
            at = 1 if fields[0] == "index" else 2  # name, or process_name
            r = r[:at] + [", ".join(r[at:at + 1 + extra])] + r[at + 1 + extra:]
        if len(r) != len(fields):
            other.append(line)
            continue
        rows.append(dict(zip(fields, r)))
    return rows, lost, other

def expected_health(row):
    values = set(row.values())
    if "[GPU requires reset]" in values:
        return "reset required"
    if values & {"ERR!", "[Unknown Error]"}:
        return "error"
    return "ok"

def num(v):
    try:
        return int(float(v))
    except (TypeError, ValueError):
        return None

try:
    inv = json.loads(read("inventory.json"))
except ValueError as e:
    print("gpu-check: openstation's JSON does not parse: %s" % e, file=sys.stderr)
    sys.exit(2)
before, lost_before, other = parse_csv("smi-before.csv")
after, _, _ = parse_csv("smi-after.csv")
apps, _, _ = parse_csv("apps.csv")
m = re.search(r"CUDA Version\s*:?\s*([0-9.]+)", read("header.txt"))
smi_cuda = m.group(1) if m else ""
if not before and not lost_before:
    print("gpu-check: nvidia-smi listed no GPUs:\n" + read("smi-before.csv"), file=sys.stderr)
    sys.exit(2)

results = []  # (gpu, field, openstation, nvidia-smi, verdict)
def check(gpu, field, ours, theirs, ok):
    results.append((gpu, field, "" if ours is None else str(ours), "" if theirs is None else str(theirs), "PASS" if ok else "FAIL"))

node = inv.get("node", {})
gpus = {g.get("index"): g for g in node.get("gpus", [])}
by_index_after = {num(r.get("index")): r for r in after}
healthy = [g for g in gpus.values() if g.get("health", "ok") == "ok" and g.get("driver_version")]
unhealthy = [g for g in gpus.values() if g.get("health", "ok") != "ok"]

check("all", "probe", inv.get("probe"), "(info)", True)
check("all", "GPU count", len(gpus), len(before) + len(lost_before), len(gpus) == len(before) + len(lost_before))
sick_rows = ["%s:%s" % (r.get("index"), expected_health(r)) for r in before if expected_health(r) != "ok"]
check("all", "unhealthy GPUs", ", ".join("%s:%s" % (g["index"], g.get("health")) for g in unhealthy) or "none",
      ", ".join(sick_rows + ["lost " + b for b in lost_before]) or "none",
      len(unhealthy) == len(lost_before) + len(sick_rows))
check("all", "node type", node.get("type"), "gpu" if before or lost_before else "cpu",
      node.get("type") == ("gpu" if before or lost_before else "cpu"))
if before:
    drv = before[0].get("driver_version", "")
    ours = sorted({g.get("driver_version", "") for g in healthy})
    check("all", "driver_version", ",".join(ours), drv, ours == [drv])
    ours = sorted({g.get("cuda_driver_version", "") for g in healthy})
    check("all", "cuda_driver_version", ",".join(ours), smi_cuda, ours == [smi_cuda] or (not smi_cuda and ours == [""]))

def near(ours, samples, tol):
    vals = [s for s in samples if s is not None]
    if ours is None or not vals:
        return ours is None and not vals
    return min(vals) - tol <= ours <= max(vals) + tol

for r in before:
    i = num(r.get("index"))
    g = gpus.get(i)
    label = "GPU %s" % i
    if g is None:
        check(label, "present", "missing", "present", False)
        continue
    a = by_index_after.get(i, r)
    check(label, "name", g.get("name"), r.get("name"), g.get("name") == r.get("name"))
    check(label, "uuid", g.get("uuid"), r.get("uuid"), g.get("uuid") == r.get("uuid"))
    check(label, "memory_total_mib", g.get("memory_total_mib"), r.get("memory.total"),
          num(r.get("memory.total")) is not None and
          abs((g.get("memory_total_mib") or 0) - num(r.get("memory.total"))) <= 1)  # MiB rounding
    check(label, "memory_used_mib", g.get("memory_used_mib"),
          r.get("memory.used") if r.get("memory.used") == a.get("memory.used") else "%s..%s" % (r.get("memory.used"), a.get("memory.used")),
          near(g.get("memory_used_mib"), [num(r.get("memory.used")), num(a.get("memory.used"))], mem_tol))
    if "compute_cap" in r:
        check(label, "compute_capability", g.get("compute_capability"), r.get("compute_cap"),
              g.get("compute_capability") == r.get("compute_cap"))
    util = g.get("utilization_percent")
    smi_utils = [num(r.get("utilization.gpu")), num(a.get("utilization.gpu"))]
    check(label, "utilization_percent", util if util is not None else "unknown",
          "/".join(str(u) for u in dict.fromkeys(smi_utils) if u is not None) or r.get("utilization.gpu"),
          near(util, smi_utils, util_tol))
    check(label, "health", g.get("health", "ok"), expected_health(r), g.get("health", "ok") == expected_health(r))
    ours_p = {p.get("pid"): p for p in g.get("processes", [])}
    smi_p = {num(p.get("pid")): p for p in apps if p.get("gpu_uuid") == r.get("uuid")}
    check(label, "process pids", ",".join(str(p) for p in sorted(ours_p)) or "none",
          ",".join(str(p) for p in sorted(smi_p)) or "none", set(ours_p) == set(smi_p))
    for pid in sorted(set(ours_p) & set(smi_p)):
        o, s = ours_p[pid], smi_p[pid]
        check(label, "pid %s name" % pid, o.get("name"), s.get("process_name"),
              o.get("name") == s.get("process_name") or s.get("process_name") in NA)
        smem = num(s.get("used_memory"))
        check(label, "pid %s memory_mib" % pid, o.get("used_memory_mib"), s.get("used_memory"),
              (smem is None and o.get("used_memory_mib") == 0) or (smem is not None and abs(o.get("used_memory_mib", -1) - smem) <= mem_tol))

for line in other:
    check("all", "unparsed nvidia-smi line", "", line, False)

failed = sum(1 for r in results if r[4] == "FAIL")
head = ("GPU", "FIELD", "OPENSTATION", "NVIDIA-SMI", "RESULT")
title = "gpu-check %s on %s: %s, %d checks, %d failed" % (
    datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), socket.gethostname(),
    ", ".join(sorted({r.get("name", "?") for r in before})) or "no GPUs", len(results), failed)
if markdown:
    print("**" + title + "**\n")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in results:
        print("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |")
else:
    widths = [min(48, max(len(head[i]), *(len(r[i]) for r in results))) for i in range(len(head))]
    print(title)
    print("  ".join(h.ljust(widths[i]) for i, h in enumerate(head)))
    for r in results:
        print("  ".join(c[:48].ljust(widths[i]) for i, c in enumerate(r)))
for w in inv.get("warnings", []):
    print("note (openstation): " + w)
print("RESULT: " + ("PASS" if failed == 0 else "FAIL (%d)" % failed))
sys.exit(1 if failed else 0)
PY

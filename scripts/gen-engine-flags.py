#!/usr/bin/env python3
"""Generates src/engine/data/*.json, the engines' flag tables, from the reference markdown
(shared/reference/flags/*.md). Python 3 standard library only; the output is deterministic.

  scripts/gen-engine-flags.py                      # writes src/engine/data/*.json
  scripts/gen-engine-flags.py --print vllm-0_21_0.json   # one table to stdout
  scripts/gen-engine-flags.py --check              # exit 1 if a committed file is out of date

The reference directory defaults to ../shared/reference next to the checkout, else
/work/shared/reference; --reference DIR overrides it.

llama.cpp's table is read from its server README (tools/server/README.md of the release), which
scripts/llama-server.sh keeps next to the build it caches; --llama-readme FILE overrides it. When
that README is not available the llama.cpp table is left as committed (and --print prints nothing).

The markdown tables say what each flag is as the engine's argparse sees it. What they cannot say
(ranges that pydantic checks later, choices written as Python expressions, the flags the platform
owns) is in the hand-written sections below, each with the fact it stands for.
"""

import argparse
import ast
import json
import os
import re
import sys

# The llama.cpp table's source: the server README, found by llama_readme() (not in the reference
# directory; its name in the data file's "sources").
LLAMA_README = "llama.cpp tools/server/README.md"

# --- The tables ---------------------------------------------------------------------------------
# file: the data file (no dots in the stem: CMake's NAME_WE stops at the first dot).
# applies_from / applies_below: the engine versions whose command-line syntax this table stands for.
TABLES = [
    {
        "file": "vllm-0_7_3.json",
        "engine": "vllm",
        "display_name": "vLLM",
        "version": "0.7.3",
        "applies_from": "0.7.0",
        "applies_below": "0.8.5",
        "version_range": "0.7.0 - 0.8.4",
        "sources": [("flags/vllm-0.7.md", "A4")],
        "style": "vllm07",
        "syntax": {"underscore_equals_dash": True, "allow_prefix_abbrev": False},
    },
    {
        "file": "vllm-0_21_0.json",
        "engine": "vllm",
        "display_name": "vLLM",
        "version": "0.21.0",
        "applies_from": "0.8.5",
        "applies_below": None,
        "version_range": ">= 0.8.5",
        "sources": [("flags/vllm-current.md", "A1"), ("flags/vllm-current.md", "A2")],
        "style": "vllm",
        "syntax": {"underscore_equals_dash": True, "allow_prefix_abbrev": False},
    },
    {
        "file": "sglang-0_5_6_post2.json",
        "engine": "sglang",
        "display_name": "SGLang",
        "version": "0.5.6.post2",
        "applies_from": "0.5.0",
        "applies_below": None,
        "version_range": ">= 0.5.0",
        "sources": [("flags/sglang-0.5.6.md", "A3")],
        "style": "sglang",
        "syntax": {"underscore_equals_dash": False, "allow_prefix_abbrev": True},
    },
    {
        # node-llama-cpp@3.21.1 ships llama.cpp tag v0.4.0 (llama/llama.cpp.info.json). llama.cpp
        # keeps old flags as "removed" rows with a message, so one table stands for every release
        # (older build numbers such as b6100 included).
        "file": "llama_cpp-0_4_0.json",
        "engine": "llama.cpp",
        "display_name": "llama.cpp",
        "version": "0.4.0",
        "applies_from": "0",
        "applies_below": None,
        "version_range": "any release",
        "sources": [(LLAMA_README, "Common params"), (LLAMA_README, "Sampling params"),
                    (LLAMA_README, "Server-specific params")],
        "style": "llama",
        "syntax": {"underscore_equals_dash": False, "allow_prefix_abbrev": False},
    },
]

# --- Hand-written facts ---------------------------------------------------------------------------

# Flags the platform sets itself: refused in extended parameters, with the reason.
_OWN_PORT = "the platform allocates the engine's port from the agent's port range"
_OWN_HOST = "the platform binds the engine to the node's address and routes clients through the gateway"
_OWN_MODEL = "the platform passes the model path of the deployed model"
_OWN_NAME = "the platform sets the served model name to the service's name"
_OWN_KEY = "the gateway owns authentication; clients use OpenStation API keys"
_OWN_DIST = "the platform's deployment plan sets multi-node parameters for every node"
_OWN_CONFIG = "a config file would bypass validation; pass the flags as extended parameters instead"
_OWN_DOWNLOAD = ("the platform passes the model's GGUF file from its model library; the engine "
                 "must not download weights itself")
_OWN_ROUTER = "the platform runs one model per engine instance (llama.cpp's router mode is not used)"
PLATFORM_OWNED = {
    "vllm": {
        "--port": _OWN_PORT,
        "--host": _OWN_HOST,
        "--uds": _OWN_HOST,
        "--model": _OWN_MODEL,
        "--served-model-name": _OWN_NAME,
        "--api-key": _OWN_KEY,
        "--config": _OWN_CONFIG,
    },
    "sglang": {
        "--port": _OWN_PORT,
        "--host": _OWN_HOST,
        "--model-path": _OWN_MODEL,
        "--served-model-name": _OWN_NAME,
        "--api-key": _OWN_KEY,
        "--nnodes": _OWN_DIST,
        "--node-rank": _OWN_DIST,
        "--dist-init-addr": _OWN_DIST,
        "--config": _OWN_CONFIG,
    },
    "llama.cpp": {
        "--port": _OWN_PORT,
        "--host": _OWN_HOST,
        "--model": _OWN_MODEL,
        "--alias": _OWN_NAME,
        "--api-key": _OWN_KEY,
        "--api-key-file": _OWN_KEY,
        "--model-url": _OWN_DOWNLOAD,
        "--docker-repo": _OWN_DOWNLOAD,
        "--hf-repo": _OWN_DOWNLOAD,
        "--hf-file": _OWN_DOWNLOAD,
        "--models-dir": _OWN_ROUTER,
        "--models-preset": _OWN_ROUTER,
        "--embd-gemma-default": _OWN_DOWNLOAD,
        "--fim-qwen-1.5b-default": _OWN_DOWNLOAD,
        "--fim-qwen-3b-default": _OWN_DOWNLOAD,
        "--fim-qwen-7b-default": _OWN_DOWNLOAD,
        "--fim-qwen-7b-spec": _OWN_DOWNLOAD,
        "--fim-qwen-14b-spec": _OWN_DOWNLOAD,
        "--fim-qwen-30b-default": _OWN_DOWNLOAD,
        "--gpt-oss-20b-default": _OWN_DOWNLOAD,
        "--gpt-oss-120b-default": _OWN_DOWNLOAD,
        "--vision-gemma-4b-default": _OWN_DOWNLOAD,
        "--vision-gemma-12b-default": _OWN_DOWNLOAD,
    },
}

# Ranges (min, max, min_exclusive). vLLM checks most of these with pydantic after parsing; the
# platform checks them before launch.
_PORT = (1, 65535, False)
_POS = (1, None, False)
_NONNEG = (0, None, False)
_FRACTION = (0, 1, True)
RANGES = {
    "vllm": {
        "--gpu-memory-utilization": _FRACTION,
        "--tensor-parallel-size": _POS,
        "--pipeline-parallel-size": _POS,
        "--data-parallel-size": _POS,
        "--data-parallel-size-local": _NONNEG,
        "--decode-context-parallel-size": _POS,
        "--prefill-context-parallel-size": _POS,
        "--max-model-len": _POS,
        "--max-num-seqs": _POS,
        "--max-num-batched-tokens": _POS,
        "--kv-cache-memory-bytes": _NONNEG,
        "--cpu-offload-gb": _NONNEG,
        "--swap-space": _NONNEG,
        "--block-size": _POS,
        "--num-gpu-blocks-override": _POS,
        "--max-loras": _POS,
        "--max-cpu-loras": _POS,
        "--max-parallel-loading-workers": _POS,
        "--max-seq-len-to-capture": _POS,
        "--max-cudagraph-capture-size": _POS,
        "--kv-offloading-size": _NONNEG,
        "--mm-processor-cache-gb": _NONNEG,
        "--api-server-count": _POS,
        "--nnodes": _POS,
        "--node-rank": _NONNEG,
        "--port": _PORT,
        "--master-port": _PORT,
        "--data-parallel-rpc-port": _PORT,
    },
    "sglang": {
        "--mem-fraction-static": _FRACTION,
        "--tensor-parallel-size": _POS,
        "--pipeline-parallel-size": _POS,
        "--data-parallel-size": _POS,
        "--expert-parallel-size": _POS,
        "--context-length": _POS,
        "--max-running-requests": _POS,
        "--max-queued-requests": _POS,
        "--max-total-tokens": _POS,
        "--max-prefill-tokens": _POS,
        "--chunked-prefill-size": (-1, None, False),  # -1 disables chunked prefill
        "--cuda-graph-max-bs": _POS,
        "--page-size": _POS,
        "--cpu-offload-gb": _NONNEG,
        "--nnodes": _POS,
        "--node-rank": _NONNEG,
        "--port": _PORT,
        "--nccl-port": _PORT,
        "--disaggregation-bootstrap-port": _PORT,
    },
    # llama.cpp's own checks (common/arg.cpp) and what its README says each value means.
    "llama.cpp": {
        "--ctx-size": (0, None, False),  # 0 = the model's training context
        "--parallel": (-1, None, False),  # -1 = auto
        "--threads": (-1, None, False),  # -1 = all cores
        "--threads-batch": (-1, None, False),
        "--batch-size": _POS,
        "--ubatch-size": _POS,
        "--n-gpu-layers": (-1, None, False),
        "--predict": (-2, None, False),  # -1 = infinity, -2 = until the context is full
        "--keep": (-1, None, False),
        "--timeout": _POS,
        "--threads-http": (-1, None, False),
        "--port": _PORT,
    },
}

# Choices the v0.7-era table writes as Python expressions (engines.md §1.2, v0.7.x column; the
# FAQ §4.4 lists the same methods).
_QUANT_07 = ["aqlm", "awq", "deepspeedfp", "tpu_int8", "fp8", "ptpc_fp8", "fbgemm_fp8", "modelopt",
             "marlin", "gguf", "gptq_marlin_24", "gptq_marlin", "awq_marlin", "gptq",
             "compressed-tensors", "bitsandbytes", "qqq", "hqq", "experts_int8", "neuron_quant",
             "ipex", "quark", "moe_wna16"]
_LOAD_07 = ["auto", "pt", "safetensors", "npcache", "dummy", "tensorizer", "sharded_state", "gguf",
            "bitsandbytes", "mistral", "runai_streamer"]
CHOICE_OVERRIDES = {
    ("vllm07", "--quantization"): _QUANT_07,
    ("vllm07", "--speculative-model-quantization"): _QUANT_07,
    ("vllm07", "--load-format"): _LOAD_07,
    ("vllm07", "--task"): ["auto", "generate", "embedding", "embed", "classify", "score", "reward"],
}

# Defaults the v0.7 table gives as attribute names (engines.md §1.2 and §1.4).
DEFAULT_OVERRIDES = {
    "vllm07": {
        "--gpu-memory-utilization": "0.9",
        "--max-num-seqs": "256",
        "--tensor-parallel-size": "1",
        "--pipeline-parallel-size": "1",
        "--block-size": "16",
        "--swap-space": "4",
        "--dtype": "auto",
        "--kv-cache-dtype": "auto",
        "--load-format": "auto",
        "--seed": "0",
        "--max-seq-len-to-capture": "8192",
        "--worker-cls": "auto",
    },
}

# Flags the tables do not list.
EXTRA_FLAGS = {
    # engines.md A2 preamble: added in make_arg_parser.
    "vllm": [
        {"names": ["--headless"], "type": "bool", "bool_style": "presence"},
        {"names": ["--api-server-count", "-asc"], "type": "int"},
        {"names": ["--config"], "type": "str"},
        {"names": ["--grpc"], "type": "bool", "bool_style": "presence"},
    ],
    "vllm07": [],
    "sglang": [],
    "llama": [],
}

# Extra aliases (engines.md §1.1: -O / -O3 map to --optimization-level in current vLLM).
EXTRA_ALIASES = {("vllm", "--optimization-level"): ["-O"]}
# Known values added to a flag (-O3 gives "3").
EXTRA_CHOICES = {("vllm", "--optimization-level"): ["0", "1", "2", "3"]}

# Short help for the flags people use most (shown by `openstation engines flags`).
HELP = {
    "--gpu-memory-utilization": "fraction of each GPU's total memory this instance may use",
    "--max-model-len": "context length (prompt + output tokens)",
    "--max-num-seqs": "requests processed together",
    "--max-num-batched-tokens": "tokens processed per scheduler step",
    "--tensor-parallel-size": "GPUs a layer is split across",
    "--pipeline-parallel-size": "stages the layers are split into (usually one per node)",
    "--dtype": "activation and weight dtype; half on GPUs below compute capability 8.0",
    "--quantization": "quantization method of the checkpoint",
    "--load-format": "format of the weights to load",
    "--kv-cache-dtype": "dtype of the KV cache; fp8 halves it",
    "--enable-chunked-prefill": "split long prompts into chunks (disable on V100)",
    "--enforce-eager": "no CUDA graphs (less memory, slower)",
    "--kv-cache-memory-bytes": "KV cache size per GPU, bypassing --gpu-memory-utilization",
    "--mem-fraction-static": "fraction of GPU memory for weights and the KV pool",
    "--context-length": "context length (prompt + output tokens)",
    "--max-running-requests": "requests processed together",
    "--chunked-prefill-size": "tokens per prefill chunk; -1 disables chunking",
    "--max-total-tokens": "KV pool size in tokens",
    "--cuda-graph-max-bs": "largest batch captured in a CUDA graph",
    "--disable-cuda-graph": "no CUDA graphs (less memory, slower)",
    "--trust-remote-code": "run the model repository's own Python code",
}

# llama.cpp's help lines (its flag names overlap vLLM's: --chat-template).
LLAMA_HELP = {
    "--ctx-size": "context size in tokens shared by all slots (0 = the model's)",
    "--parallel": "slots: requests processed together; each gets ctx-size / parallel tokens",
    "--n-gpu-layers": "layers offloaded to the GPU ('auto', 'all' or a number)",
    "--threads": "CPU threads for generation (-1 = all)",
    "--cache-type-k": "KV cache type of K (f16, q8_0, ...)",
    "--cache-type-v": "KV cache type of V (f16, q8_0, ...)",
    "--chat-template": "a built-in template name (chatml, llama3, ...) or a Jinja template",
    "--jinja": "use the Jinja template engine for chat",
    "--flash-attn": "Flash Attention: on, off or auto",
}

# llama.cpp: metavariables that stand for numbers the README writes as N without a decimal
# default (their parser reads them with std::stof).
LLAMA_FLOATS = {"--rope-scale", "--rope-freq-base", "--rope-freq-scale", "--defrag-thold",
                "--video-fps"}
# llama.cpp: the name the platform uses where the README lists another long name first.
LLAMA_CANONICAL = {"--n-gpu-layers", "--n-gpu-layers-draft"}
# llama.cpp: integers that also take words (-ngl auto / all).
LLAMA_SPECIAL = {"--n-gpu-layers": ["auto", "all"], "--n-gpu-layers-draft": ["auto", "all"]}


# --- Markdown ------------------------------------------------------------------------------------

def read_rows(path, section):
    """Rows (lists of cells) of the tables under the '### <section>.' heading."""
    rows = []
    in_section = False
    header = None
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.rstrip("\n")
            if line.startswith("#"):
                in_section = re.match(r"#+\s*" + re.escape(section) + r"(\.|\s*$)", line) is not None
                header = None
                continue
            if not in_section:
                continue
            if not line.startswith("|"):
                header = None
                continue
            # An escaped '\|' (llama.cpp's README: `[on\|off]`) is part of a cell.
            cells = [c.strip().replace("\0", "|")
                     for c in line.replace("\\|", "\0").strip().strip("|").split("|")]
            if header is None:
                header = cells
                continue
            if all(re.fullmatch(r":?-+:?", c) for c in cells):
                continue
            if len(cells) > len(header):  # a '|' inside the type cell
                extra = len(cells) - len(header)
                cells = [cells[0], " | ".join(cells[1:2 + extra])] + cells[2 + extra:]
            rows.append(dict(zip([h.lower() for h in header], cells)))
    return rows


def names_of(cell):
    return [n for n in re.split(r"[,\s]+", cell.replace("`", "")) if n.startswith("-")]


def clean_default(text, name):
    d = text.strip()
    m = re.fullmatch(r"lambda: (.*)\)", d)
    if m:
        return m.group(1)
    if re.fullmatch(r"\w+\)", d):  # default_factory=dict / list / SomeConfig
        return {"dict)": "{}", "list)": "[]", "set)": "[]"}.get(d, "")
    if d == name.lstrip("-").replace("-", "_"):  # an attribute of the same name
        return ""
    if re.fullmatch(r"'[^']*'", d):
        return d[1:-1]
    return d


def list_cell(text):
    """Choices written as a comma list, a Python list literal, or an expression (→ None)."""
    t = text.strip()
    if t.startswith("choices:"):
        t = t[len("choices:"):].strip()
    if not t:
        return []
    if t.startswith("["):
        try:
            return [str(v) for v in ast.literal_eval(t)]
        except (ValueError, SyntaxError):
            return None
    if re.search(r"[()\[\]+*]", t) or re.fullmatch(r"[A-Za-z_]*_choices|[A-Z_]+", t):
        return None
    return [c.strip() for c in t.split(",") if c.strip()]


def base_flag(names):
    return {"name": names[0], "aliases": names[1:]}


def classify_vllm(row):
    """vLLM current (A1, A2): 'Type as parsed' and 'Choices / suggested values' columns."""
    names = names_of(row["flag(s)"] if "flag(s)" in row else row["flag"])
    ty = row.get("type as parsed", row.get("type", "")).strip()
    choices_cell = row.get("choices / suggested values", row.get("choices", "")).strip()
    flag = base_flag(names)
    flag["default"] = clean_default(row.get("default (source)", row.get("default", "")), names[0])
    known = None
    strict = False
    m = re.match(r"\(any string accepted by argparse; known values\)\s*(.*)", choices_cell)
    if m:
        known = [c.strip() for c in m.group(1).split(",") if c.strip()]
    elif choices_cell:
        known = list_cell(choices_cell)
        strict = True
    if 'accepts "None"' in ty:
        flag["accepts_none"] = True
    if ty.startswith("bool"):
        flag.update(type="bool", bool_style="optional_action")
    elif ty.startswith("flag (store_true)"):
        flag.update(type="bool", bool_style="presence")
    elif ty.startswith("list"):
        flag.update(type="list", multi_value=True)
        item = re.search(r"of (\w+)", ty)
        item_type = item.group(1) if item else "str"
        flag["item_type"] = {"int": "int", "float": "float"}.get(item_type, "str")
    elif ty.startswith("JSON list"):
        flag["type"] = "json"
    elif ty.startswith("JSON"):
        flag.update(type="json", dotted_keys=True)
    elif ty.startswith("str or JSON"):
        flag.update(type="str", dotted_keys=True)
    elif ty.startswith("int"):
        flag["type"] = "int"
        if "human-readable" in ty:
            flag["human_readable"] = True
        if "-1/auto" in ty:
            flag["special_values"] = ["-1", "auto"]
    elif ty.startswith("float"):
        flag["type"] = "float"
    elif ty.startswith("choice") or (not ty and strict):
        flag["type"] = "choice"
    elif ty.startswith("optional str"):
        flag.update(type="str", value_optional=True)
    elif "repeatable" in ty:
        flag.update(type="str", repeatable=True)
    else:
        flag["type"] = "str"
    if known:
        if "None" in known:
            known = [k for k in known if k != "None"]
            flag["accepts_none"] = True
        flag["choices"] = known
        flag["choices_strict"] = strict
        if flag["type"] == "list":
            flag["item_type"] = "choice"
    return flag


def classify_vllm07(row):
    names = names_of(row["flag(s)"])
    ty = row["type/action"].strip().strip("'")
    flag = base_flag(names)
    flag["default"] = clean_default(row["default"], names[0])
    nargs = row.get("nargs", "").strip().strip("'")
    choices = list_cell(row["choices"])
    if ty == "store_true":
        flag.update(type="bool", bool_style="presence")
    elif ty == "StoreBoolean":
        flag.update(type="bool", bool_style="store_boolean")
    elif ty == "argparse.BooleanOptionalAction":
        flag.update(type="bool", bool_style="optional_action")
    elif ty in ("json.loads",) or ty.endswith(".from_json") or ty.endswith(".from_cli"):
        flag["type"] = "json"
    elif ty == "int":
        flag["type"] = "int"
    elif ty == "float":
        flag["type"] = "float"
    else:
        flag["type"] = "str"
        if ty == "nullable_str":
            flag["accepts_none"] = True
    if nargs == "+":
        flag["multi_value"] = True
        flag["item_type"] = flag["type"] if flag["type"] in ("int", "float") else "str"
        flag["type"] = "list"
    override = CHOICE_OVERRIDES.get(("vllm07", names[0]))
    if override is not None:
        choices = list(override)
    if choices:
        if "None" in choices:
            choices = [c for c in choices if c != "None"]
            flag["accepts_none"] = True
        flag["choices"] = choices
        flag["choices_strict"] = True
        if flag["type"] == "str":
            flag["type"] = "choice"
    if names[0] == "--quantization" or names[0] == "--speculative-model-quantization":
        flag["accepts_none"] = True  # [*QUANTIZATION_METHODS, None]
    d = DEFAULT_OVERRIDES["vllm07"].get(names[0])
    if d is not None:
        flag["default"] = d
    return flag


def classify_sglang(row):
    names = names_of(row["flag(s)"])
    ty = row["type"].strip()
    flag = base_flag(names)
    flag["default"] = clean_default(row["default"], names[0])
    choices = list_cell(row["choices"])
    m = re.match(r"(\w+) \(nargs ([+*?])\)", ty)
    nargs = None
    if m:
        ty, nargs = m.group(1), m.group(2)
    if ty == "store_true":
        flag.update(type="bool", bool_style="presence")
    elif ty in ("json.loads", "json_list_type"):
        flag["type"] = "json"
    elif ty == "int":
        flag["type"] = "int"
    elif ty == "float":
        flag["type"] = "float"
    else:
        flag["type"] = "str"
        if ty == "nullable_str":
            flag["accepts_none"] = True
    if nargs in ("+", "*"):
        flag["item_type"] = flag["type"]
        flag["type"] = "list"
        flag["multi_value"] = True
        if nargs == "*":
            flag["value_optional"] = True
    elif nargs == "?":
        flag["value_optional"] = True
    if choices:
        flag["choices"] = choices
        flag["choices_strict"] = True
        if flag["type"] == "str":
            flag["type"] = "choice"
        elif flag["type"] == "list" and flag["item_type"] == "str":
            flag["item_type"] = "choice"
    return flag


def split_llama_names(cell):
    """'-c, --ctx-size N' → (['-c', '--ctx-size'], 'N'); the metavariable may contain spaces."""
    text = cell.replace("`", "")
    names = []
    meta = ""
    parts = [p.strip() for p in text.split(", ")]
    for i, part in enumerate(parts):
        if not part.startswith("-"):
            # A comma inside the metavariable (N0,N1 or a, b lists): the rest is the metavariable.
            meta = (meta + ", " if meta else "") + ", ".join(parts[i:])
            break
        name, _, rest = part.partition(" ")
        names.append(name)
        if rest:
            meta = " ".join([rest] + parts[i + 1:]) if i + 1 < len(parts) else rest
            break
    return names, meta.strip()


def llama_default(explanation):
    m = re.search(r"\(default: ([^,)]*)", explanation)
    return m.group(1).strip().strip("'\"") if m else ""


def classify_llama_rows(row):
    """llama.cpp server README rows: one row may give a flag and its negation (--x, --no-x); the
    negation becomes a flag of its own (llama.cpp's parser treats them as separate names)."""
    cell = row.get("argument", "")
    explanation = row.get("explanation", "")
    names, meta = split_llama_names(cell)
    if not names:
        return []
    positive = [n for n in names if not re.match(r"^--?no-|^-n[a-z]", n) or n in ("-np", "-n", "-ngl", "-nr", "-ncmoe", "-ncffn", "-ncmoed", "-ngld")]
    negative = [n for n in names if n not in positive]
    out = []
    for group in (positive, negative):
        if not group:
            continue
        longs = [n for n in group if n.startswith("--")]
        canonical = longs[0] if longs else group[0]
        canonical = next((n for n in group if n in LLAMA_CANONICAL), canonical)
        flag = base_flag([canonical] + [n for n in group if n != canonical])
        flag["default"] = llama_default(explanation)
        out.append(flag)
    main = out[0]
    if len(out) > 1 or not meta:
        for f in out:
            f.update(type="bool", bool_style="presence")
            f["default"] = ""
        return out
    name = main["name"]
    choice = re.fullmatch(r"\{([^}]*)\}", meta) or re.fullmatch(r"<([^>]*)>", meta)
    optional = re.fullmatch(r"\[([^\]]*)\]", meta)
    allowed = re.search(r"allowed values: ([^<]*)", explanation)
    if optional and "|" in optional.group(1):
        main.update(type="choice", choices=optional.group(1).split("|"), choices_strict=True,
                    value_optional=True)
    elif choice and ("," in choice.group(1) or "|" in choice.group(1)):
        main.update(type="choice", choices=re.split(r"[,|]", choice.group(1)), choices_strict=True)
    elif allowed:
        main.update(type="choice", choices=[c.strip() for c in allowed.group(1).split(",")],
                    choices_strict=True)
    elif meta in ("START END",):
        main.update(type="list", item_type="int", multi_value=True)
    elif meta in ("N", "SEED", "SECONDS", "L", "P", "SIMILARITY"):
        d = main["default"]
        if name in LLAMA_FLOATS or meta in ("P", "SIMILARITY") or re.fullmatch(r"-?\d+\.\d+", d):
            main["type"] = "float"
        elif re.fullmatch(r"-?\d+", d) or name in LLAMA_SPECIAL:
            main["type"] = "int"
        else:
            main["type"] = "float"
        if name in LLAMA_SPECIAL:
            main["special_values"] = LLAMA_SPECIAL[name]
    else:
        main["type"] = "str"
    return out


CLASSIFIERS = {"vllm": classify_vllm, "vllm07": classify_vllm07, "sglang": classify_sglang}


def source_path(rel, refdir, llama_readme):
    return llama_readme if rel == LLAMA_README else os.path.join(refdir, rel)


def build_table(table, refdir, llama_readme=None):
    style = table["style"]
    family = table["engine"]
    flags = []
    seen = set()
    for rel, section in table["sources"]:
        for row in read_rows(source_path(rel, refdir, llama_readme), section):
            made = classify_llama_rows(row) if style == "llama" else [CLASSIFIERS[style](row)]
            for flag in made:
                if flag["name"] in seen:
                    continue
                seen.add(flag["name"])
                flags.append(flag)
    for extra in EXTRA_FLAGS.get(style, []):
        if extra["names"][0] in seen:
            continue
        flag = base_flag(extra["names"])
        flag.update({k: v for k, v in extra.items() if k != "names"})
        flag["default"] = ""
        seen.add(flag["name"])
        flags.append(flag)
    for flag in flags:
        name = flag["name"]
        for alias in EXTRA_ALIASES.get((style, name), []):
            if alias not in flag["aliases"]:
                flag["aliases"].append(alias)
        extra_choices = EXTRA_CHOICES.get((style, name))
        if extra_choices:
            flag["choices"] = flag.get("choices", []) + [c for c in extra_choices
                                                         if c not in flag.get("choices", [])]
        rng = RANGES[family].get(name)
        if rng:
            lo, hi, lo_ex = rng
            if lo is not None:
                flag["min"] = lo
            if hi is not None:
                flag["max"] = hi
            if lo_ex:
                flag["min_exclusive"] = True
        reason = PLATFORM_OWNED[family].get(name)
        if reason:
            flag["platform_owned"] = True
            flag["owned_reason"] = reason
        helps = LLAMA_HELP if family == "llama.cpp" else HELP
        if name in helps:
            flag["help"] = helps[name]
        if flag.get("type") == "bool" and flag.get("default") == "":
            flag["default"] = "False" if flag.get("bool_style") == "presence" else ""
    return flags


def available(table, refdir, llama_readme):
    return all(os.path.isfile(source_path(rel, refdir, llama_readme or ""))
               for rel, _ in table["sources"])


def generate(refdir, llama_readme=None):
    """{file name: JSON text} for every table whose sources are present."""
    tables = [t for t in TABLES if available(t, refdir, llama_readme)]
    built = {t["file"]: build_table(t, refdir, llama_readme) for t in tables}
    out = {}
    for t in tables:
        flags = built[t["file"]]
        for flag in flags:
            flag["versions"] = [u["version"] for u in tables
                                if u["engine"] == t["engine"]
                                and any(g["name"] == flag["name"] for g in built[u["file"]])]
        doc = {
            "generated_by": "scripts/gen-engine-flags.py; do not edit",
            "sources": sorted({rel for rel, _ in t["sources"]}),
            "engine": t["engine"],
            "display_name": t["display_name"],
            "version": t["version"],
            "applies_from": t["applies_from"],
            "applies_below": t["applies_below"] or "",
            "version_range": t["version_range"],
            "underscore_equals_dash": t["syntax"]["underscore_equals_dash"],
            "allow_prefix_abbrev": t["syntax"]["allow_prefix_abbrev"],
            "flags": [{k: f[k] for k in sorted(f)} for f in flags],
        }
        out[t["file"]] = json.dumps(doc, indent=1, ensure_ascii=True, sort_keys=False) + "\n"
    return out


def default_refdir():
    here = os.path.dirname(os.path.abspath(__file__))
    for cand in (os.path.join(here, "..", "..", "shared", "reference"),
                 "/work/shared/reference"):
        if os.path.isdir(cand):
            return os.path.normpath(cand)
    return None


def default_llama_readme():
    cache = os.environ.get("OPENSTATION_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "openstation")
    path = os.path.join(cache, "llama.cpp", "node-llama-cpp-3.21.1", "server-README.md")
    return path if os.path.isfile(path) else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", help="the shared/reference directory")
    ap.add_argument("--out", help="output directory (default src/engine/data)")
    ap.add_argument("--print", dest="print_name", help="print one table to stdout")
    ap.add_argument("--check", action="store_true", help="fail if a committed file differs")
    ap.add_argument("--llama-readme", help="llama.cpp's tools/server/README.md (default: the one "
                    "scripts/llama-server.sh cached)")
    args = ap.parse_args()
    refdir = args.reference or default_refdir()
    if not refdir or not os.path.isdir(refdir):
        sys.exit("gen-engine-flags: reference directory not found; pass --reference DIR")
    files = generate(refdir, args.llama_readme or default_llama_readme())
    if args.print_name:
        if args.print_name not in files and args.print_name in [t["file"] for t in TABLES]:
            return  # its source is not available here
        if args.print_name not in files:
            sys.exit("gen-engine-flags: unknown table %s; known: %s"
                     % (args.print_name, ", ".join(sorted(files))))
        sys.stdout.write(files[args.print_name])
        return
    outdir = args.out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src",
                                      "engine", "data")
    stale = []
    for name, text in sorted(files.items()):
        path = os.path.join(outdir, name)
        if args.check:
            try:
                with open(path, encoding="utf-8") as f:
                    if f.read() != text:
                        stale.append(name)
            except OSError:
                stale.append(name)
            continue
        os.makedirs(outdir, exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
    if stale:
        sys.exit("gen-engine-flags: out of date: %s; run scripts/gen-engine-flags.py"
                 % ", ".join(stale))


if __name__ == "__main__":
    main()

// fake-engine: a stand-in for vLLM, vLLM CPU and SGLang in tests (never shipped as an engine).
//
//   fake-engine vllm serve MODEL [flags]        (or a symlink named `vllm`: vllm serve MODEL ...)
//   fake-engine sglang [-m sglang.launch_server] --model-path MODEL [flags]
//   fake-engine python -m sglang.launch_server ... (tests/support/sglang-wrapper.sh does this)
//
// It validates the command line against the engine's flag table, refuses to start where the real
// engine would (bf16 below compute capability 8.0, a model too large for the simulated GPUs, as
// the project's estimator decides) with the real engine's message, then serves the OpenAI API.
// The vLLM personality with no visible GPUs is vLLM CPU. Environment: docs/testing.md.
#include "fake_engine.hpp"

#include "core/json.hpp"
#include "core/strings.hpp"
#include "engine/args.hpp"
#include "engine/memory_settings.hpp"
#include "engine/spec.hpp"
#include "model/catalog.hpp"
#include "model/estimator.hpp"
#include "model/model_files.hpp"
#include "model/node.hpp"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <pthread.h>
#include <unistd.h>

namespace openstation::fake_engine {
namespace {

namespace fs = std::filesystem;

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

std::int64_t env_int(const char* name, std::int64_t fallback) {
  auto v = env(name);
  if (!v || v->empty()) return fallback;
  try {
    return std::stoll(*v);
  } catch (...) {
    return fallback;
  }
}

void log(const char* level, const std::string& msg) {
  std::fprintf(stdout, "%s %s\n", level, msg.c_str());
  std::fflush(stdout);
}

[[noreturn]] void fail(int code, const std::string& msg) {
  std::fprintf(stderr, "%s\n", msg.c_str());
  std::fflush(stderr);
  std::exit(code);
}

/// The usage line and the argparse-style program name of each personality.
struct Personality {
  core::EngineKind kind = core::EngineKind::vllm;
  std::string prog;
  std::string usage;
};

[[noreturn]] void usage_error(const Personality& p, const std::string& msg) {
  fail(2, p.usage + "\n" + p.prog + ": error: " + msg);
}

/// Turns the engine module's parse error into the argparse message the real engine prints.
[[noreturn]] void argparse_error(const Personality& p, const core::Error& e) {
  if (e.code == "args.unknown_flag" || e.code == "args.stray_value") {
    usage_error(p, "unrecognized arguments: " + e.field);
  }
  if (e.code == "args.ambiguous_flag") usage_error(p, "ambiguous option: " + e.field);
  if (e.code == "args.missing_value")
    usage_error(p, "argument " + e.field + ": expected one argument");
  usage_error(p, "argument " + e.field + ": " + e.message);
}

struct Visible {
  model::NodeSpec node;
  bool have_inventory = false;
};

/// The simulated node: OPENSTATION_FAKE_GPU_INVENTORY restricted by CUDA_VISIBLE_DEVICES.
Visible visible_node() {
  Visible v;
  auto path = env("OPENSTATION_FAKE_GPU_INVENTORY");
  if (!path || path->empty()) return v;
  auto node = model::load_node_file(*path);
  if (!node)
    fail(1, "fake-engine: cannot read OPENSTATION_FAKE_GPU_INVENTORY: " + node.error().message);
  v.node = std::move(*node);
  v.have_inventory = true;
  if (auto cvd = env("CUDA_VISIBLE_DEVICES")) {
    std::vector<model::GpuSpec> kept;
    std::string list = *cvd;
    std::size_t pos = 0;
    while (pos <= list.size() && !list.empty()) {
      const auto comma = list.find(',', pos);
      const std::string item = core::trim(
          list.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos));
      for (const auto& g : v.node.gpus) {
        if (item == std::to_string(g.index) || (!g.uuid.empty() && item == g.uuid))
          kept.push_back(g);
      }
      if (comma == std::string::npos) break;
      pos = comma + 1;
    }
    v.node.gpus = std::move(kept);
  }
  // As the engine sees them: cuda:0, cuda:1, ...
  for (std::size_t i = 0; i < v.node.gpus.size(); ++i) v.node.gpus[i].index = static_cast<int>(i);
  return v;
}

/// The model the engine would load: a directory (config.json) or .gguf on disk, else a catalog
/// card matched by id or hub repo; nullopt when neither is known.
std::optional<model::ModelInfo> find_model(const std::string& name) {
  std::error_code ec;
  if (fs::exists(name, ec)) {
    auto info = model::inspect_model_path(name);
    if (!info) fail(1, "OSError: " + info.error().message);
    return *info;
  }
  const auto catalog = model::Catalog::builtin();
  for (const auto& card : catalog.cards()) {
    if (card.id == name || card.hf_repo == name || card.ms_repo == name)
      return card.to_model_info();
  }
  return std::nullopt;
}

std::string gib2(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", bytes / static_cast<double>(core::kGiB));
  return buf;
}

/// The real engine's message for the estimator's first blocking problem, or "".
std::string engine_failure(const Personality& p, const engine::EngineSpec& spec,
                           const model::Estimate& e) {
  const bool sglang = p.kind == core::EngineKind::sglang;
  const bool v1 = spec.version >= core::Version::parse("0.8.5").value();
  const std::string oom = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate " +
                          gib2(static_cast<double>(e.weights_bytes_per_gpu)) +
                          " GiB. GPU 0 has a total capacity of " +
                          gib2(static_cast<double>(e.gpu_total_bytes)) + " GiB of which " +
                          std::to_string(e.free_bytes_per_gpu >> 20) + " MiB is free.";
  const std::string sglang_mem =
      "RuntimeError: Not enough memory. Please try to increase --mem-fraction-static.";
  for (const auto& f : e.problems) {
    const std::string& c = f.code;
    if (c == "estimate.disk_insufficient") continue;
    if (c == "estimate.max_model_len_exceeds_model") {
      if (sglang) {
        if (env("SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN").value_or("") == "1") continue;
        return "ValueError: User-specified context_length (" + std::to_string(e.max_model_len) +
               ") is greater than the derived context_length (" + std::to_string(e.model_max_len) +
               "). This may lead to incorrect model outputs or CUDA errors. Note that the derived "
               "context_length may differ from max_position_embeddings in the model's config. To "
               "allow overriding this maximum, set the env var "
               "SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN=1";
      }
      if (env("VLLM_ALLOW_LONG_MAX_MODEL_LEN").value_or("") == "1") continue;
      return "ValueError: User-specified max_model_len (" + std::to_string(e.max_model_len) +
             ") is greater than the derived max_model_len (max_position_embeddings=" +
             std::to_string(e.model_max_len) +
             " or model_max_length=None in model's config.json). To allow overriding this maximum, "
             "set the env var VLLM_ALLOW_LONG_MAX_MODEL_LEN=1.";
    }
    if (c == "estimate.insufficient_free_memory") {
      if (!v1) return oom;
      const double total = static_cast<double>(e.gpu_total_bytes);
      return "ValueError: Free memory on device cuda:0 (" +
             gib2(static_cast<double>(e.free_bytes_per_gpu)) + "/" + gib2(total) +
             " GiB) on startup is less than desired GPU memory utilization (" +
             core::json::format_double(e.utilization) + ", " +
             gib2(static_cast<double>(e.budget_bytes_per_gpu)) +
             " GiB). Decrease GPU memory utilization or reduce GPU memory used by other processes.";
    }
    if (c == "estimate.weights_exceed_budget" || c == "estimate.cuda_graph_headroom" ||
        c == "estimate.kv_cache_memory_exceeds_gpu" || c == "estimate.host_memory_insufficient") {
      return sglang ? sglang_mem : oom;
    }
    if (c == "estimate.no_kv_memory") {
      if (sglang) return sglang_mem;
      return "ValueError: No available memory for the cache blocks. Try increasing "
             "`gpu_memory_utilization` when initializing the engine.";
    }
    if (c == "estimate.kv_cache_too_small") {
      if (sglang) return sglang_mem;
      if (!v1) {
        return "ValueError: The model's max seq len (" + std::to_string(e.max_model_len) +
               ") is larger than the maximum number of tokens that can be stored in KV cache (" +
               std::to_string(e.kv_cache_tokens) +
               "). Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when "
               "initializing the engine.";
      }
      const double need =
          static_cast<double>(e.kv_bytes_per_token) * static_cast<double>(e.max_model_len);
      return "ValueError: To serve at least one request with the model's max seq len (" +
             std::to_string(e.max_model_len) + "), (" + gib2(need) +
             " GiB KV cache is needed, which is larger than the available KV cache memory (" +
             gib2(static_cast<double>(e.kv_cache_bytes_per_gpu)) +
             " GiB). Based on the available memory, the estimated maximum model length is " +
             std::to_string(e.largest_fitting_len) +
             ". Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when "
             "initializing the engine.";
    }
    if (c == "estimate.not_enough_gpus") {
      return "ValueError: The number of required GPUs exceeds the total number of available GPUs "
             "in the placement group.";
    }
    return "ValueError: " + f.message;
  }
  return {};
}

std::optional<std::string> flag_value(const engine::ParsedArgs& args, std::string_view name) {
  const auto* f = args.find(name);
  if (f == nullptr || f->values.empty()) return std::nullopt;
  return f->values.front();
}

/// Blocks SIGTERM/SIGINT and waits for one of them for at most `ms` (forever when negative).
/// True when a signal arrived.
bool wait_signal(std::int64_t ms) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  if (ms < 0) {
    int sig = 0;
    sigwait(&set, &sig);
    return true;
  }
  timespec ts{static_cast<time_t>(ms / 1000), static_cast<long>((ms % 1000) * 1000000)};
  return sigtimedwait(&set, nullptr, &ts) > 0;
}

int run(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  const std::string base = fs::path(argv[0]).filename().string();
  std::string who = base;
  if (base != "vllm" && base.rfind("python", 0) != 0) {
    if (args.empty()) {
      fail(2,
           "usage: fake-engine vllm serve MODEL [flags] | fake-engine sglang --model-path MODEL "
           "[flags]");
    }
    who = args.front();
    args.erase(args.begin());
  }
  Personality p;
  if (who == "vllm") {
    p = {core::EngineKind::vllm, "vllm serve", "usage: vllm serve [model_tag] [options]"};
    if (!args.empty() && (args[0] == "--version" || args[0] == "-v")) {
      auto spec =
          engine::resolve_engine(core::EngineKind::vllm, env("FAKE_ENGINE_VERSION").value_or(""));
      std::printf("%s\n", spec ? (*spec)->version.str().c_str() : "unknown");
      return 0;
    }
    if (args.empty() || args[0] != "serve") {
      fail(2,
           "usage: vllm [-h] [-v] {chat,complete,serve,bench,collect-env,run-batch} ...\n"
           "vllm: error: argument subparser: invalid choice: '" +
               (args.empty() ? std::string() : args[0]) +
               "' (choose from 'chat', 'complete', 'serve', 'bench', 'collect-env', 'run-batch')");
    }
    args.erase(args.begin());
  } else if (who == "sglang" || who.rfind("python", 0) == 0) {
    p = {core::EngineKind::sglang, "launch_server.py",
         "usage: launch_server.py [-h] --model-path MODEL_PATH [options]"};
    if (args.size() >= 2 && args[0] == "-m") {
      if (args[1] != "sglang.launch_server") fail(1, "/usr/bin/python: No module named " + args[1]);
      args.erase(args.begin(), args.begin() + 2);
    }
  } else {
    fail(2, "fake-engine: unknown engine personality '" + who + "' (use vllm or sglang)");
  }

  const Visible vis = visible_node();
  if (p.kind == core::EngineKind::vllm && vis.node.gpus.empty())
    p.kind = core::EngineKind::vllm_cpu;
  auto spec_r = engine::resolve_engine(p.kind, env("FAKE_ENGINE_VERSION").value_or(""));
  if (!spec_r) fail(2, "fake-engine: " + spec_r.error().message);
  const engine::EngineSpec& spec = **spec_r;

  // The platform-owned flags (model, host, port, served name, API key) are taken out first: the
  // engine module refuses them in users' extended parameters, but the engine itself needs them.
  std::map<std::string, std::vector<std::string>> owned;
  std::vector<std::string> rest;
  std::string model;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& tok = args[i];
    if (p.kind != core::EngineKind::sglang && i == 0 && !tok.empty() && tok[0] != '-') {
      model = tok;
      continue;
    }
    if (tok.size() > 1 && tok[0] == '-') {
      const auto eq = tok.find('=');
      const engine::FlagSpec* f = spec.find(tok.substr(0, eq));
      if (f != nullptr && f->platform_owned) {
        auto& values = owned[f->name];
        if (eq != std::string::npos) {
          values.push_back(tok.substr(eq + 1));
        } else {
          while (i + 1 < args.size() && !(args[i + 1].size() > 1 && args[i + 1][0] == '-')) {
            values.push_back(args[++i]);
            if (!f->multi_value) break;
          }
        }
        if (values.empty()) usage_error(p, "argument " + tok + ": expected one argument");
        continue;
      }
    }
    rest.push_back(tok);
  }
  for (const char* key : {"--model", "--model-path"}) {
    if (auto it = owned.find(key); it != owned.end() && model.empty()) model = it->second.front();
  }
  if (model.empty()) {
    if (p.kind == core::EngineKind::sglang) {
      usage_error(p, "the following arguments are required: --model-path/--model");
    }
    fail(1,
         "ValueError: `model` should be provided as the first positional argument when using "
         "`vllm serve`. i.e. `vllm serve <model> --<arg> <value>`.");
  }
  auto parsed = engine::parse_args(spec, rest);
  if (!parsed) argparse_error(p, parsed.error());

  if (p.kind == core::EngineKind::sglang && vis.node.gpus.empty()) {
    fail(1, "RuntimeError: No CUDA GPUs are available");
  }

  EngineState state;
  state.kind = p.kind;
  state.version = spec.version.str();
  state.model_path = model;
  state.served_name =
      owned.count("--served-model-name") ? owned["--served-model-name"].front() : model;
  if (owned.count("--api-key")) {
    state.api_key = owned["--api-key"].front();
  } else if (p.kind != core::EngineKind::sglang) {
    state.api_key = env("VLLM_API_KEY").value_or("");
  }
  const bool sglang = p.kind == core::EngineKind::sglang;
  std::string host = sglang ? "127.0.0.1" : "0.0.0.0";
  if (owned.count("--host")) host = owned["--host"].front();
  long port = sglang ? 30000 : 8000;
  if (owned.count("--port")) {
    try {
      port = std::stol(owned["--port"].front());
    } catch (...) {
      usage_error(p, "argument --port: invalid int value: '" + owned["--port"].front() + "'");
    }
  }

  log("INFO", std::string(sglang ? "SGLang" : "vLLM") + " API server version " + state.version +
                  " (stand-in engine, pid " + std::to_string(getpid()) + ")");
  log("INFO", "non-default args: model='" + model + "' " + engine::join_command_line(rest));

  // bf16 on a GPU below compute capability 8.0.
  const auto info = find_model(model);
  if (!vis.node.gpus.empty()) {
    const std::string dtype = core::to_lower(flag_value(*parsed, "--dtype").value_or("auto"));
    const bool model_bf16 = !info || info->arch.torch_dtype == model::DType::bf16 ||
                            info->arch.torch_dtype == model::DType::unknown;
    const bool wants_bf16 = dtype == "bfloat16" || (dtype == "auto" && model_bf16);
    const bool old =
        p.kind != core::EngineKind::sglang && spec.version < core::Version::parse("0.8.5").value();
    for (const auto& g : vis.node.gpus) {
      if (!wants_bf16 || g.cc_major >= 8) continue;
      if (dtype == "auto" && !old) {
        log("WARNING", "Your device '" + g.name + "' (with compute capability " +
                           g.compute_capability() +
                           ") doesn't support torch.bfloat16. Falling back to torch.float16 for "
                           "compatibility.");
        break;
      }
      fail(
          1,
          "ValueError: Bfloat16 is only supported on GPUs with compute capability of at least 8.0. "
          "Your " +
              g.name + " GPU has compute capability " + g.compute_capability() +
              ". You can use float16 instead by explicitly setting the `dtype` flag in CLI, for "
              "example: --dtype=half.");
    }
  }

  // Memory: fail exactly where the estimator says the model does not fit.
  if (info && (vis.have_inventory)) {
    std::map<std::string, std::string> envmap;
    if (auto kv = env("VLLM_CPU_KVCACHE_SPACE")) envmap["VLLM_CPU_KVCACHE_SPACE"] = *kv;
    auto settings = engine::memory_settings(spec, *parsed, envmap);
    if (!settings) fail(1, "ValueError: " + settings.error().message);
    model::EstimateRequest req;
    req.model = *info;
    req.node = vis.node;
    req.node->disk_free_gib = 1e9;  // the files are already there
    req.engine = {p.kind, spec.version};
    req.settings = *settings;
    auto int_flag = [&](std::initializer_list<const char*> names) -> int {
      for (const char* n : names) {
        if (auto v = flag_value(*parsed, n)) {
          try {
            return std::stoi(*v);
          } catch (...) {
          }
        }
      }
      return 1;
    };
    req.tp = sglang ? int_flag({"--tp-size"}) : int_flag({"--tensor-parallel-size"});
    req.pp = sglang ? int_flag({"--pp-size"}) : int_flag({"--pipeline-parallel-size"});
    auto est = model::estimate(req);
    if (!est) {
      if (est.error().code == "estimate.tp_not_dividing_heads") {
        fail(1, "ValueError: Total number of attention heads (" +
                    std::to_string(info->arch.num_attention_heads) +
                    ") must be divisible by tensor parallel size (" + std::to_string(req.tp) +
                    ").");
      }
      fail(1, "ValueError: " + est.error().message);
    }
    if (const std::string why = engine_failure(p, spec, *est); !why.empty()) fail(1, why);
    if (est->max_model_len > 0) state.max_model_len = est->max_model_len;
    log("INFO",
        "# GPU blocks: " +
            std::to_string(est->block_size > 0 ? est->kv_cache_tokens / est->block_size : 0) +
            ", maximum concurrency for " + std::to_string(est->max_model_len) +
            " tokens per request: " + gib2(est->max_concurrency * static_cast<double>(core::kGiB)) +
            "x");
  } else if (auto len = flag_value(*parsed, sglang ? "--context-length" : "--max-model-len")) {
    try {
      state.max_model_len = std::stoll(*len);
    } catch (...) {
    }
  }

  state.tokens_per_sec = static_cast<double>(env_int("FAKE_ENGINE_TOKENS_PER_SEC", 0));
  if (auto t = env("FAKE_ENGINE_TOKENS_PER_SEC")) {
    try {
      state.tokens_per_sec = std::stod(*t);
    } catch (...) {
    }
  }
  state.output_tokens = static_cast<int>(env_int("FAKE_ENGINE_OUTPUT_TOKENS", 16));
  state.embedding_dim = static_cast<int>(env_int("FAKE_ENGINE_EMBEDDING_DIM", 8));
  state.crash_after = env_int("FAKE_ENGINE_CRASH_AFTER", -1);
  state.crash_after_tokens = env_int("FAKE_ENGINE_CRASH_AFTER_TOKENS", -1);
  state.exit_code = static_cast<int>(env_int("FAKE_ENGINE_EXIT_CODE", 1));
  const std::string hang = env("FAKE_ENGINE_HANG").value_or("");
  state.hang_requests = hang == "request";
  state.hang_health = hang == "health";
  state.stamp_events = env("FAKE_ENGINE_STAMP_EVENTS").value_or("") == "1";
  state.created = static_cast<std::int64_t>(std::time(nullptr));

  // Signals are taken with sigwait on this thread; the server's threads inherit the mask.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  log("INFO", "Loading model weights (simulated) ...");
  if (hang == "startup") {
    wait_signal(-1);
    return 0;
  }
  if (wait_signal(env_int("FAKE_ENGINE_STARTUP_MS", 0))) {
    log("INFO", "Shutting down during start-up");
    return 0;
  }
  if (env("FAKE_ENGINE_DIE_DURING_STARTUP").value_or("") == "1") {
    fail(static_cast<int>(env_int("FAKE_ENGINE_EXIT_CODE", 1)),
         "RuntimeError: Engine core initialization failed. See root cause above. (injected by "
         "FAKE_ENGINE_DIE_DURING_STARTUP)");
  }

  http::ServerOptions opt;
  opt.host = host;
  opt.port = static_cast<std::uint16_t>(port);
  opt.threads = static_cast<int>(env_int("FAKE_ENGINE_THREADS", 2));
  opt.server_header = "uvicorn";
  opt.body_limit = 64ull << 20;
  opt.idle_timeout = std::chrono::milliseconds(5000);
  http::Server server(opt);
  add_routes(server, state);
  if (auto ok = server.start(); !ok) {
    fail(1, "ERROR:    [Errno 98] error while attempting to bind on address ('" + host + "', " +
                std::to_string(port) + "): " + ok.error().message);
  }
  log("INFO:    ", "Started server process [" + std::to_string(getpid()) + "]");
  log("INFO:    ", "Uvicorn running on http://" + host + ":" + std::to_string(server.port()) +
                       " (Press CTRL+C to quit)");
  wait_signal(-1);
  log("INFO:    ", "Shutting down");
  server.stop(std::chrono::milliseconds(2000));
  return 0;
}

}  // namespace
}  // namespace openstation::fake_engine

int main(int argc, char** argv) {
  return openstation::fake_engine::run(argc, argv);
}

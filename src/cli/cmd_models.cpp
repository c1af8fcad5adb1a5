#include "cli/cmd_models.hpp"
#include "cli/client_command.hpp"
#include "cli/commands.hpp"
#include "cli/context.hpp"
#include "cli/rest_client.hpp"
#include "cli/table.hpp"
#include "core/paths.hpp"
#include "model/catalog.hpp"

#include <CLI/CLI.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <ostream>
#include <thread>

namespace openstation::cli {

core::Result<model::Catalog> load_catalog(const std::string& file) {
  if (!file.empty()) {
    std::error_code ec;
    if (!std::filesystem::exists(file, ec)) {
      return core::not_found("catalog.file_not_found", "--catalog " + file + ": no such file",
                             "catalog");
    }
    return model::Catalog::load(file);
  }
  return model::Catalog::load(core::user_catalog_path(core::default_data_dir()));
}

namespace {

std::string dtype_label(model::DType d) {
  switch (d) {
    case model::DType::fp8: return "FP8";
    case model::DType::bf16: return "BF16";
    case model::DType::f16: return "FP16";
    case model::DType::f32: return "FP32";
    case model::DType::int8: return "INT8";
    case model::DType::int4: return "INT4";
    case model::DType::unknown: return "?";
  }
  return "?";
}

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

boost::json::object card_to_json(const model::ModelCard& c) {
  const auto& a = c.arch;
  boost::json::object arch{{"architecture", a.architecture},
                           {"model_type", a.model_type},
                           {"hidden_size", a.hidden_size},
                           {"num_layers", a.num_layers},
                           {"num_attention_heads", a.num_attention_heads},
                           {"num_kv_heads", a.num_kv_heads},
                           {"head_dim", a.head_dim},
                           {"vocab_size", a.vocab_size},
                           {"max_position_embeddings", a.max_position_embeddings},
                           {"derived_max_len", a.derived_max_len()},
                           {"torch_dtype", model::to_string(a.torch_dtype)},
                           {"is_mla", a.is_mla}};
  if (a.is_mla) {
    arch["kv_lora_rank"] = a.kv_lora_rank;
    arch["qk_rope_head_dim"] = a.qk_rope_head_dim;
  }
  if (a.quantization) arch["quant_method"] = a.quantization->method;
  return {{"id", c.id},
          {"display_name", c.display_name},
          {"params_b", c.params_b},
          {"params_label", c.params_label},
          {"dtype", model::to_string(c.dtype)},
          {"hf_repo", c.hf_repo},
          {"ms_repo", c.ms_repo},
          {"min_vram_gb", c.min_vram_gb},
          {"disk_gb", c.disk_gb},
          {"builtin", c.builtin},
          {"arch", std::move(arch)}};
}

void print_table(const model::Catalog& cat, std::ostream& out) {
  struct Row {
    std::string id, name, params, dtype, vram, disk, sources;
  };
  std::vector<Row> rows = {{"ID", "NAME", "PARAMS", "DTYPE", "MIN VRAM", "DISK", "SOURCES"}};
  for (const auto& c : cat.cards()) {
    std::string sources;
    if (!c.hf_repo.empty()) sources += "hf:" + c.hf_repo;
    if (!c.ms_repo.empty())
      sources += (sources.empty() ? "" : "  ") + std::string("ms:") + c.ms_repo;
    rows.push_back({c.id + (c.builtin ? "" : " *"), c.display_name, c.params_label,
                    dtype_label(c.dtype), std::to_string(c.min_vram_gb) + " GB",
                    fixed(c.disk_gb, c.disk_gb >= 100 ? 0 : 1) + " GB", sources});
  }
  std::size_t w[6] = {};
  for (const auto& r : rows) {
    const std::string* cols[6] = {&r.id, &r.name, &r.params, &r.dtype, &r.vram, &r.disk};
    for (int i = 0; i < 6; ++i) w[i] = std::max(w[i], cols[i]->size());
  }
  for (const auto& r : rows) {
    const std::string* cols[6] = {&r.id, &r.name, &r.params, &r.dtype, &r.vram, &r.disk};
    for (int i = 0; i < 6; ++i) {
      const bool right = i >= 2 && i != 3;
      const std::string pad(w[i] - cols[i]->size(), ' ');
      out << (right ? pad + *cols[i] : *cols[i] + pad) << "  ";
    }
    out << r.sources << "\n";
  }
  out << "\nMIN VRAM = weights × 1.2 + 2 GB (FAQ §1). For a real machine and engine, run\n"
         "  openstation estimate --model ID --node NODE.json [--engine vllm|sglang|vllm-cpu]\n";
  bool user = false;
  for (const auto& c : cat.cards()) user = user || !c.builtin;
  if (user) out << "* = a card from your catalog file\n";
}

// The server's model library (GET/POST/DELETE /api/v1/models).

std::string model_node(const boost::json::value& m) {
  std::string node = cell(m, "node");
  return node == "-" ? cell(m, "node_id") : node;
}

std::string model_size(const boost::json::value& m) {
  const auto size = int_field(m, "size_bytes", -1);
  return size < 0 ? "-" : human_bytes(static_cast<std::uint64_t>(size));
}

std::string model_status(const boost::json::value& m) {
  std::string s = cell(m, "status");
  const std::string reason = str_field(m, "status_reason");
  if (!reason.empty()) s += " (" + reason + ")";
  return s;
}

core::Result<void> list_models(const RestClient& api, Context& ctx) {
  auto items = api.list_all("/models");
  if (!items) return items.error();
  if (print_json_if(ctx, boost::json::object{{"items", *items}})) return {};
  if (items->empty()) {
    *ctx.out << "No models. Import one: `openstation models import --name NAME --path DIR "
                "--node NODE`.\n";
    return {};
  }
  Table t({"NAME", "STATUS", "FORMAT", "SIZE", "NODE", "PATH", "CREATED"});
  t.align(3, Table::Align::right);
  for (const auto& m : *items) {
    t.add({cell(m, "name"), model_status(m), cell(m, "format"), model_size(m), model_node(m),
           cell(m, "path"), human_time(str_field(m, "created_at"))});
  }
  *ctx.out << t.render();
  return {};
}

void print_model(const boost::json::value& m, std::ostream& out) {
  out << render_fields({{"Name", cell(m, "name")},
                        {"ID", cell(m, "id")},
                        {"Status", model_status(m)},
                        {"Source", cell(m, "source")},
                        {"Repository", str_field(m, "repo")},
                        {"Node", model_node(m)},
                        {"Path", cell(m, "path")},
                        {"Format", cell(m, "format")},
                        {"Size", model_size(m)},
                        {"Created", str_field(m, "created_at")}});
}

// The download queue (/api/v1/downloads).

std::string download_progress(const boost::json::value& d) {
  const auto total = int_field(d, "bytes_total", 0);
  const auto done = int_field(d, "bytes_done", 0);
  if (total <= 0) return done > 0 ? human_bytes(static_cast<std::uint64_t>(done)) : "-";
  char pct[32];
  std::snprintf(pct, sizeof pct, "%.1f%%",
                100.0 * static_cast<double>(done) / static_cast<double>(total));
  return std::string(pct) + " of " + human_bytes(static_cast<std::uint64_t>(total));
}

std::string download_speed(const boost::json::value& d) {
  const auto* o = d.if_object();
  const auto* v = o != nullptr ? o->if_contains("bytes_per_second") : nullptr;
  const double bps = v != nullptr && v->is_number() ? v->to_number<double>() : 0.0;
  if (bps <= 0) return "-";
  return human_bytes(static_cast<std::uint64_t>(bps)) + "/s";
}

std::string download_eta(const boost::json::value& d) {
  const auto* o = d.if_object();
  const auto* v = o != nullptr ? o->if_contains("eta_seconds") : nullptr;
  if (v == nullptr || !v->is_number()) return "-";
  const auto secs = static_cast<std::int64_t>(v->to_number<double>());
  char buf[32];
  std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(secs / 3600),
                static_cast<long long>(secs / 60 % 60), static_cast<long long>(secs % 60));
  return buf;
}

void print_download(const boost::json::value& d, std::ostream& out) {
  out << render_fields(
      {{"Model", cell(d, "name")},
       {"Download", cell(d, "id")},
       {"State", cell(d, "state")},
       {"Source",
        cell(d, "source") + " " + str_field(d, "repo") + " @ " + str_field(d, "revision")},
       {"Progress", download_progress(d) + " (" + std::to_string(int_field(d, "files_done", 0)) +
                        "/" + std::to_string(int_field(d, "files_total", 0)) + " files)"},
       {"Speed", download_speed(d)},
       {"ETA", download_eta(d)},
       {"Error", str_field(d, "error")},
       {"Path", str_field(d, "path")}});
}

core::Result<void> list_downloads(const RestClient& api, Context& ctx) {
  auto items = api.list_all("/downloads");
  if (!items) return items.error();
  if (print_json_if(ctx, boost::json::object{{"items", *items}})) return {};
  if (items->empty()) {
    *ctx.out << "No downloads. Start one: `openstation models download OWNER/NAME` or "
                "`openstation models download --catalog ID`.\n";
    return {};
  }
  Table t({"NAME", "STATE", "PROGRESS", "SPEED", "ETA", "SOURCE", "REPO", "ERROR"});
  for (const auto& d : *items) {
    t.add({cell(d, "name"), cell(d, "state"), download_progress(d), download_speed(d),
           download_eta(d), cell(d, "source"), cell(d, "repo"), str_field(d, "error")});
  }
  *ctx.out << t.render();
  return {};
}

/// The flags of `openstation models download`.
struct DownloadFlags {
  std::string repo;
  std::string catalog;
  std::string source;
  std::string revision;
  std::string name;
  bool wait = false;
};

/// The flags of `openstation models import`.
struct ImportFlags {
  std::string name;
  std::string path;
  std::string node;
};

}  // namespace

void register_models_commands(CLI::App& root, Context& ctx) {
  CLI::App* models = root.add_subcommand(
      "models", "Models: the built-in catalog and your cards; the server's model library");
  models->require_subcommand(1);
  auto catalog_file = std::make_shared<std::string>();
  CLI::App* catalog = models->add_subcommand(
      "catalog",
      "List the model catalog: the ten DeepSeek models of the FAQ plus the cards in "
      "<data dir>/catalog.json (or --catalog FILE), with sources, minimum GPU memory and disk");
  catalog->add_flag("--json", ctx.json, "Print a JSON array of cards");
  catalog->add_option("--catalog", *catalog_file,
                      "A catalog file ({\"models\": [card, ...]}) to use instead of the one in "
                      "the data dir");
  catalog->callback([catalog_file, &ctx] {
    auto cat = load_catalog(*catalog_file);
    if (!cat) {
      ctx.fail(cat.error());
      return;
    }
    if (ctx.json) {
      boost::json::array arr;
      for (const auto& c : cat->cards()) arr.push_back(card_to_json(c));
      ctx.print_json(arr);
    } else {
      print_table(*cat, *ctx.out);
    }
  });

  add_client_command(models, "list", "List the models in the server's library", ctx,
                     [&ctx](const RestClient& api) { return list_models(api, ctx); });

  auto import_flags = std::make_shared<ImportFlags>();
  CLI::App* import = add_client_command(
      models, "import",
      "Import model files already on a node (the node's agent checks them) into the library", ctx,
      [import_flags, &ctx](const RestClient& api) -> core::Result<void> {
        auto reply = api.post("/models", boost::json::object{{"name", import_flags->name},
                                                             {"path", import_flags->path},
                                                             {"node", import_flags->node}});
        if (!reply) return reply.error();
        if (print_json_if(ctx, *reply)) return {};
        *ctx.out << "Model " << cell(*reply, "name") << " imported.\n";
        print_model(*reply, *ctx.out);
        return {};
      });
  import->add_option("--name", import_flags->name, "The model's name in the library")->required();
  import->add_option("--path", import_flags->path, "The directory (or GGUF file) on the node")
      ->required();
  import->add_option("--node", import_flags->node, "The node that has the files (name or id)")
      ->required();

  auto dl = std::make_shared<DownloadFlags>();
  CLI::App* download = add_client_command(
      models, "download",
      "Download a model from ModelScope or HuggingFace into the server's model store (queued: one "
      "download runs at a time)",
      ctx, [dl, &ctx](const RestClient& api) -> core::Result<void> {
        boost::json::object body;
        if (!dl->repo.empty()) body["repo"] = dl->repo;
        if (!dl->catalog.empty()) body["catalog"] = dl->catalog;
        if (!dl->source.empty()) body["source"] = dl->source;
        if (!dl->revision.empty()) body["revision"] = dl->revision;
        if (!dl->name.empty()) body["name"] = dl->name;
        auto reply = api.post("/downloads", body);
        if (!reply) return reply.error();
        const std::string id = str_field(*reply, "id");
        while (dl->wait) {
          const std::string state = str_field(*reply, "state");
          if (state == "completed" || state == "failed" || state == "cancelled" ||
              state == "paused") {
            break;
          }
          if (!ctx.json) {
            *ctx.out << cell(*reply, "name") << ": " << state << " " << download_progress(*reply)
                     << " " << download_speed(*reply) << " ETA " << download_eta(*reply) << "\n";
          }
          std::this_thread::sleep_for(std::chrono::seconds(2));
          reply = api.get("/downloads/" + url_encode(id));
          if (!reply) return reply.error();
        }
        if (print_json_if(ctx, *reply)) return {};
        print_download(*reply, *ctx.out);
        if (str_field(*reply, "state") == "failed") {
          return core::Error(core::Errc::unavailable, "download.failed",
                             "the download failed: " + str_field(*reply, "error") +
                                 "; `openstation models resume " + str_field(*reply, "name") +
                                 "` retries from the bytes already on disk");
        }
        return {};
      });
  download->add_option("repo", dl->repo, "The hub repository, OWNER/NAME");
  download->add_option("--catalog", dl->catalog,
                       "A catalog model id instead of a repository (`openstation models catalog`)");
  download->add_option("--source", dl->source,
                       "modelscope or huggingface (default: the server's hub.default_source)");
  download->add_option(
      "--revision", dl->revision,
      "Branch, tag or commit (default: master on ModelScope, main on HuggingFace)");
  download->add_option("--name", dl->name,
                       "The model's name in the library (default: the catalog id or NAME)");
  download->add_flag("--wait", dl->wait,
                     "Show progress until the download completes, fails or is paused");

  add_client_command(models, "downloads",
                     "The download queue: state, progress, speed, ETA and errors", ctx,
                     [&ctx](const RestClient& api) { return list_downloads(api, ctx); });

  struct QueueVerb {
    const char* name;
    const char* help;
  };
  for (const auto& verb :
       {QueueVerb{"pause", "Pause a download (its bytes are kept; the next one starts)"},
        QueueVerb{"resume",
                  "Start a paused download again, retry a failed one from the bytes on disk, or "
                  "restart a cancelled one (queued right after the one downloading)"},
        QueueVerb{"cancel",
                  "Cancel a download: stops it, deletes its partial files, clears its progress "
                  "and log"}}) {
    auto target = std::make_shared<std::string>();
    const std::string action = verb.name;
    add_client_command(models, verb.name, verb.help, ctx,
                       [target, action, &ctx](const RestClient& api) -> core::Result<void> {
                         auto reply = api.post("/downloads/" + url_encode(*target) + "/" + action,
                                               boost::json::object{});
                         if (!reply) return reply.error();
                         if (print_json_if(ctx, *reply)) return {};
                         print_download(*reply, *ctx.out);
                         return {};
                       })
        ->add_option("model", *target, "Model name or download id")
        ->required();
  }

  auto log_target = std::make_shared<std::string>();
  auto log_tail = std::make_shared<int>(200);
  CLI::App* dlog =
      add_client_command(models, "download-log", "The log of a model's download", ctx,
                         [log_target, log_tail, &ctx](const RestClient& api) -> core::Result<void> {
                           const std::string path = "/downloads/" + url_encode(*log_target) +
                                                    "/log?tail=" + std::to_string(*log_tail);
                           auto r = api.raw("GET", path);
                           if (!r) return r.error();
                           if (r->status != 200) {
                             // The JSON call turns the error body into the error (code and
                             // message).
                             auto e = api.get(path);
                             if (!e) return e.error();
                           }
                           *ctx.out << r->body;
                           return {};
                         });
  dlog->add_option("model", *log_target, "Model name or download id")->required();
  dlog->add_option("--tail", *log_tail, "Lines from the end (0: all)")
      ->check(CLI::Range(0, 100000));

  auto show_id = std::make_shared<std::string>();
  add_client_command(models, "show", "One model of the library", ctx,
                     [show_id, &ctx](const RestClient& api) -> core::Result<void> {
                       auto m = api.get("/models/" + url_encode(*show_id));
                       if (!m) return m.error();
                       if (print_json_if(ctx, *m)) return {};
                       print_model(*m, *ctx.out);
                       return {};
                     })
      ->add_option("model", *show_id, "Model name or id")
      ->required();

  auto delete_id = std::make_shared<std::string>();
  add_client_command(
      models, "delete", "Remove a model from the library (refused while a service uses it)", ctx,
      [delete_id, &ctx](const RestClient& api) -> core::Result<void> {
        auto reply = api.del("/models/" + url_encode(*delete_id));
        if (!reply) return reply.error();
        if (print_json_if(ctx, reply->is_null() ? boost::json::value(
                                                      boost::json::object{{"deleted", *delete_id}})
                                                : *reply)) {
          return {};
        }
        *ctx.out << "Model " << *delete_id << " deleted.\n";
        return {};
      })
      ->add_option("model", *delete_id, "Model name or id")
      ->required();
}

}  // namespace openstation::cli

#include "cli/cmd_models.hpp"
#include "cli/commands.hpp"
#include "cli/context.hpp"
#include "core/paths.hpp"
#include "model/catalog.hpp"

#include <CLI/CLI.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <ostream>

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

}  // namespace

void register_models_commands(CLI::App& root, Context& ctx) {
  CLI::App* models = root.add_subcommand("models", "Models: the built-in catalog and your cards");
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
}

}  // namespace openstation::cli

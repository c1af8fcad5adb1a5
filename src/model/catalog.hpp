#pragma once
/// The model catalog: the ten models of FAQ §1 compiled into the binary (data/catalog.json) plus
/// the user's own cards from a file in the data dir, validated on load.

#include "core/error.hpp"
#include "model/arch.hpp"
#include "model/model_info.hpp"

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace openstation::model {

/// One catalog entry.
struct ModelCard {
  std::string id;                ///< "deepseek-r1-distill-qwen-7b"
  std::string display_name;      ///< "DeepSeek-R1-Distill-Qwen-7B"
  double params_b = 0;           ///< parameters in billions, nominal (7, 1.5, 671)
  std::string params_label;      ///< "7B", "1.5B", "671B"
  DType dtype = DType::unknown;  ///< as the seed table lists it (FP8, BF16)
  std::string hf_repo;           ///< "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"
  std::string ms_repo;           ///< ModelScope repo id
  std::int64_t min_vram_gb = 0;  ///< the seed formula, rounded
  double disk_gb = 0;            ///< disk needed for the files
  ModelArch arch;                ///< architecture facts so estimates work without files
  bool builtin = true;           ///< false for user cards

  /// A ModelInfo from the card alone: nominal parameters, weights = params × dtype bytes.
  ModelInfo to_model_info() const;
};

/// The seed formula of FAQ §1: weights × 1.2 + 2 GB, weights = params(B) × bytes per param, in GB
/// (10^9), rounded to the nearest GB.
std::int64_t seed_min_vram_gb(double params_b, DType dtype);

class Catalog {
 public:
  /// The built-in cards only.
  static Catalog builtin();
  /// Built-in cards plus the user's file (JSON {"models": [card...]}); a missing file is fine, a
  /// malformed one is an error naming the card and field. A user card with a built-in id replaces
  /// it.
  static core::Result<Catalog> load(const std::filesystem::path& user_file);
  /// Parses cards from text (the built-in file or a user file).
  static core::Result<std::vector<ModelCard>> parse(std::string_view json_text,
                                                    std::string_view source, bool builtin);

  const std::vector<ModelCard>& cards() const { return cards_; }
  /// The card or not_found with "did you mean".
  core::Result<ModelCard> find(std::string_view id) const;

 private:
  std::vector<ModelCard> cards_;
};

}  // namespace openstation::model

#pragma once
/// Small string helpers shared by every module.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace openstation::core {

inline constexpr std::uint64_t kKiB = 1024;
inline constexpr std::uint64_t kMiB = 1024 * kKiB;
inline constexpr std::uint64_t kGiB = 1024 * kMiB;

/// 81536 → "81,536".
std::string with_commas(std::int64_t n);
/// Bytes as GiB with two decimals: "13.27 GiB".
std::string gib(std::uint64_t bytes);
/// Levenshtein distance, for "did you mean" suggestions.
std::size_t edit_distance(std::string_view a, std::string_view b);
/// The candidate closest to `word` within a distance that scales with its length, or "".
std::string closest(std::string_view word, const std::vector<std::string>& candidates);
/// "a, b, c".
std::string join(const std::vector<std::string>& parts, std::string_view sep = ", ");
std::string to_lower(std::string_view s);
bool starts_with(std::string_view s, std::string_view prefix);
std::string trim(std::string_view s);

}  // namespace openstation::core

#pragma once
/// Dotted version numbers ("0.8.4", "0.5.6.post2", "b6100") compared numerically part by part.

#include "core/error.hpp"

#include <compare>
#include <string>
#include <string_view>
#include <vector>

namespace openstation::core {

/// A version: numeric parts plus an optional suffix ("post2", "rc1") that orders after the
/// plain release for "post" and before it for anything else.
class Version {
 public:
  Version() = default;
  /// Parses "0.8.4", "v0.21.0", "0.5.6.post2", "1.2rc1". Errors on empty or non-numeric input.
  static Result<Version> parse(std::string_view text);

  const std::vector<int>& parts() const { return parts_; }
  const std::string& suffix() const { return suffix_; }
  std::string str() const { return text_; }

  std::strong_ordering operator<=>(const Version& o) const;
  bool operator==(const Version& o) const { return (*this <=> o) == 0; }

 private:
  std::vector<int> parts_;
  std::string suffix_;
  std::string text_;
};

}  // namespace openstation::core

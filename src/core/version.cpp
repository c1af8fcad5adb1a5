#include "core/version.hpp"

#include <cctype>

namespace openstation::core {

Result<Version> Version::parse(std::string_view text) {
  Version v;
  v.text_ = std::string(text);
  std::string_view s = text;
  // "v0.8.4", and llama.cpp's build numbers "b6100".
  if (s.size() > 1 && (s.front() == 'v' || s.front() == 'V' || s.front() == 'b') &&
      std::isdigit(static_cast<unsigned char>(s[1]))) {
    s.remove_prefix(1);
  }
  if (s.empty() || !std::isdigit(static_cast<unsigned char>(s.front()))) {
    return invalid("version.invalid",
                   "invalid version '" + std::string(text) + "': expected digits like 0.8.4");
  }
  while (!s.empty() && std::isdigit(static_cast<unsigned char>(s.front()))) {
    int n = 0;
    while (!s.empty() && std::isdigit(static_cast<unsigned char>(s.front()))) {
      if (n > 100000000)
        return invalid("version.invalid", "version part too large in '" + std::string(text) + "'");
      n = n * 10 + (s.front() - '0');
      s.remove_prefix(1);
    }
    v.parts_.push_back(n);
    if (!s.empty() && s.front() == '.' && s.size() > 1 &&
        std::isdigit(static_cast<unsigned char>(s[1]))) {
      s.remove_prefix(1);
      continue;
    }
    break;
  }
  if (!s.empty() && (s.front() == '.' || s.front() == '-' || s.front() == '+')) s.remove_prefix(1);
  v.suffix_ = std::string(s);
  return v;
}

std::strong_ordering Version::operator<=>(const Version& o) const {
  const size_t n = std::max(parts_.size(), o.parts_.size());
  for (size_t i = 0; i < n; ++i) {
    const int a = i < parts_.size() ? parts_[i] : 0;
    const int b = i < o.parts_.size() ? o.parts_[i] : 0;
    if (a != b) return a <=> b;
  }
  // "post" suffixes order after the release; any other suffix (rc, dev) before it.
  auto rank = [](const std::string& s) {
    return s.empty() ? 1 : (s.rfind("post", 0) == 0 ? 2 : 0);
  };
  const int ra = rank(suffix_), rb = rank(o.suffix_);
  if (ra != rb) return ra <=> rb;
  return suffix_ <=> o.suffix_;
}

}  // namespace openstation::core

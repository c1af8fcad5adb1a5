#pragma once
/// Percent-encoding for URL paths and query values (RFC 3986): every byte but the unreserved
/// characters (letters, digits, '-', '_', '.', '~') becomes %XX, upper-case hex.

#include <string>
#include <string_view>

namespace openstation::core {

/// Encodes `s` as one path segment or query value; with `keep_slash`, '/' stays (a relative
/// path of several segments).
std::string percent_encode(std::string_view s, bool keep_slash = false);

}  // namespace openstation::core

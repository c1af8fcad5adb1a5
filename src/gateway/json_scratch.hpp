#pragma once
/// Private to the gateway: parsing a small JSON document (a request body, a usage chunk) without
/// touching the heap. The parser's work stack and the parsed values live in buffers inside the
/// object, which the caller keeps on its stack for the duration of one inspection; a document
/// larger than the buffers spills over to the heap as usual. The values returned by parse() are
/// valid while the JsonScratch lives.

#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parser.hpp>
#include <boost/json/value.hpp>

#include <string_view>

namespace openstation::gateway::detail {

class JsonScratch {
 public:
  JsonScratch() = default;
  JsonScratch(const JsonScratch&) = delete;
  JsonScratch& operator=(const JsonScratch&) = delete;

  /// Parses a complete document; on failure `ec` is set and `used` (when given) is the offset at
  /// which the parser stopped. Boost.JSON refuses invalid UTF-8 in strings.
  boost::json::value parse(std::string_view text, boost::system::error_code& ec,
                           std::size_t* used = nullptr) {
    boost::json::parser p(boost::json::storage_ptr(), boost::json::parse_options(), temp_,
                          sizeof(temp_));
    p.reset(&values_);
    const std::size_t n = p.write(text.data(), text.size(), ec);
    if (used != nullptr) *used = n;
    if (ec) return nullptr;
    return p.release();
  }

 private:
  unsigned char temp_[2048];
  unsigned char value_buffer_[6144];
  boost::json::monotonic_resource values_{value_buffer_, sizeof(value_buffer_)};
};

}  // namespace openstation::gateway::detail

#pragma once
/// Private: a connection's receive buffer. Bytes received and not yet consumed sit in one
/// contiguous block (so a head can be parsed in place); consumed bytes at the front are dropped
/// lazily, when room is needed. Unlike a std::string it never zero-fills the room it hands out.

#include "http/detail/beast.hpp"

#include <algorithm>
#include <cstring>
#include <memory>
#include <string_view>

namespace openstation::http::detail {

class InBuffer {
 public:
  std::string_view view() const { return {data_.get() + begin_, end_ - begin_}; }
  std::size_t size() const { return end_ - begin_; }
  bool empty() const { return begin_ == end_; }
  /// Room for `n` more bytes after the data.
  asio::mutable_buffer prepare(std::size_t n) {
    if (cap_ - end_ < n) {
      const std::size_t used = end_ - begin_;
      if (begin_ > 0 && cap_ - used >= n) {
        std::memmove(data_.get(), data_.get() + begin_, used);
      } else {
        std::size_t cap = std::max<std::size_t>(cap_ * 2, 4096);
        while (cap - used < n) cap *= 2;
        auto bigger = std::make_unique_for_overwrite<char[]>(cap);
        if (used > 0) std::memcpy(bigger.get(), data_.get() + begin_, used);
        data_ = std::move(bigger);
        cap_ = cap;
      }
      begin_ = 0;
      end_ = used;
    }
    return {data_.get() + end_, n};
  }
  void commit(std::size_t n) { end_ += n; }
  void consume(std::size_t n) {
    begin_ += std::min(n, end_ - begin_);
    if (begin_ == end_) begin_ = end_ = 0;
  }

 private:
  std::unique_ptr<char[]> data_;
  std::size_t cap_ = 0;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
};

}  // namespace openstation::http::detail

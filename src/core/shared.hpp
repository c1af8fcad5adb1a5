#pragma once
/// Shared ownership helpers.

#include <memory>
#include <utility>

namespace openstation::core {

/// The object `p` points to, counted through a control block of the caller's own (which holds
/// `p` once). A thread that keeps the result and copies it per request writes only its own count,
/// never the cache line that other threads' copies of `p` write.
template <class T>
std::shared_ptr<T> with_own_count(std::shared_ptr<T> p) {
  auto pin = std::make_shared<std::shared_ptr<T>>(std::move(p));
  return std::shared_ptr<T>(pin, pin->get());
}

}  // namespace openstation::core

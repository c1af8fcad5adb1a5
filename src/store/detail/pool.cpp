#include "store/detail/db.hpp"

#include <exception>

namespace openstation::store::detail {

core::Error internal_error(std::string message) {
  return {core::Errc::internal, "store.internal", std::move(message)};
}

core::Error unavailable_error(std::string message) {
  return {core::Errc::unavailable, "store.unavailable", std::move(message)};
}

std::string render_dialect(std::string_view sql, Backend backend) {
  static constexpr std::string_view kSerial = "{serial}";
  const std::string_view serial =
      backend == Backend::sqlite ? "INTEGER PRIMARY KEY AUTOINCREMENT" : "BIGSERIAL PRIMARY KEY";
  std::string out;
  out.reserve(sql.size());
  std::size_t pos = 0;
  while (true) {
    const auto hit = sql.find(kSerial, pos);
    out.append(sql.substr(pos, hit == std::string_view::npos ? sql.npos : hit - pos));
    if (hit == std::string_view::npos) break;
    out.append(serial);
    pos = hit + kSerial.size();
  }
  return out;
}

Pool::Pool(Factory factory, std::size_t size)
    : factory_(std::move(factory)), size_(size ? size : 1) {}

Pool::~Pool() = default;

core::Result<std::unique_ptr<Connection>> Pool::acquire() {
  std::unique_lock lock(mutex_);
  available_.wait(lock, [&] { return !idle_.empty() || open_ < size_; });
  if (!idle_.empty()) {
    auto conn = std::move(idle_.back());
    idle_.pop_back();
    return conn;
  }
  ++open_;
  lock.unlock();
  auto made = factory_();
  if (!made) {
    lock.lock();
    --open_;
    available_.notify_one();
  }
  return made;
}

void Pool::release(std::unique_ptr<Connection> conn) {
  std::lock_guard lock(mutex_);
  if (conn->healthy()) {
    idle_.push_back(std::move(conn));
  } else {
    conn.reset();
    --open_;
  }
  available_.notify_one();
}

core::Result<void> Pool::with(const std::function<core::Result<void>(Connection&)>& fn) {
  auto conn = acquire();
  if (!conn) return conn.error();
  core::Result<void> result;
  try {
    result = fn(**conn);
  } catch (const std::exception& e) {
    result = internal_error(std::string("unexpected failure in the store: ") + e.what());
  }
  release(std::move(*conn));
  return result;
}

}  // namespace openstation::store::detail

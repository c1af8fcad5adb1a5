#include "store/types.hpp"

#include <array>

namespace openstation::store {
namespace {

constexpr std::array<std::string_view, 2> kRoles{"admin", "user"};
constexpr std::array<std::string_view, 4> kNodeStatuses{"ready", "not_ready", "draining",
                                                        "removed"};
constexpr std::array<std::string_view, 4> kModelSources{"catalog", "local", "modelscope",
                                                        "huggingface"};
constexpr std::array<std::string_view, 4> kModelStatuses{"pending", "downloading", "ready",
                                                         "failed"};
constexpr std::array<std::string_view, 9> kInstanceStates{"pending",  "scheduled", "preparing",
                                                          "starting", "running",   "unhealthy",
                                                          "draining", "stopped",   "failed"};
constexpr std::array<std::string_view, 6> kDownloadStates{"queued", "downloading", "paused",
                                                          "failed", "completed",   "cancelled"};

template <class E, std::size_t N>
std::string_view name_of(const std::array<std::string_view, N>& names, E v) noexcept {
  const auto i = static_cast<std::size_t>(v);
  return i < N ? names[i] : std::string_view("unknown");
}

template <class E, std::size_t N>
bool parse(const std::array<std::string_view, N>& names, std::string_view s, E& out) noexcept {
  for (std::size_t i = 0; i < N; ++i) {
    if (names[i] == s) {
      out = static_cast<E>(i);
      return true;
    }
  }
  return false;
}

}  // namespace

std::string_view to_string(Role v) noexcept {
  return name_of(kRoles, v);
}
std::string_view to_string(NodeStatus v) noexcept {
  return name_of(kNodeStatuses, v);
}
std::string_view to_string(ModelSource v) noexcept {
  return name_of(kModelSources, v);
}
std::string_view to_string(ModelStatus v) noexcept {
  return name_of(kModelStatuses, v);
}
std::string_view to_string(InstanceState v) noexcept {
  return name_of(kInstanceStates, v);
}
std::string_view to_string(DownloadState v) noexcept {
  return name_of(kDownloadStates, v);
}

bool from_string(std::string_view s, Role& out) noexcept {
  return parse(kRoles, s, out);
}
bool from_string(std::string_view s, NodeStatus& out) noexcept {
  return parse(kNodeStatuses, s, out);
}
bool from_string(std::string_view s, ModelSource& out) noexcept {
  return parse(kModelSources, s, out);
}
bool from_string(std::string_view s, ModelStatus& out) noexcept {
  return parse(kModelStatuses, s, out);
}
bool from_string(std::string_view s, InstanceState& out) noexcept {
  return parse(kInstanceStates, s, out);
}
bool from_string(std::string_view s, DownloadState& out) noexcept {
  return parse(kDownloadStates, s, out);
}

}  // namespace openstation::store

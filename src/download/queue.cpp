#include "download/queue.hpp"

#include <algorithm>
#include <limits>

namespace openstation::download {

using store::DownloadState;

std::string_view to_string(QueueCommand c) noexcept {
  switch (c) {
    case QueueCommand::pause: return "pause";
    case QueueCommand::resume: return "resume";
    case QueueCommand::cancel: return "cancel";
  }
  return "?";
}

std::int64_t submit_position(const std::vector<QueueItem>& items) {
  std::int64_t top = 0;
  for (const auto& i : items) top = std::max(top, i.position);
  return top + 1;
}

std::optional<std::string> next_to_run(const std::vector<QueueItem>& items) {
  const QueueItem* best = nullptr;
  for (const auto& i : items) {
    if (i.state == DownloadState::downloading && (best == nullptr || i.position < best->position)) {
      best = &i;
    }
  }
  if (best != nullptr) return best->id;
  for (const auto& i : items) {
    if (i.state == DownloadState::queued && (best == nullptr || i.position < best->position)) {
      best = &i;
    }
  }
  if (best == nullptr) return std::nullopt;
  return best->id;
}

core::Result<QueueItem> apply(const std::vector<QueueItem>& items, std::string_view id,
                              QueueCommand command) {
  const auto it =
      std::find_if(items.begin(), items.end(), [&](const QueueItem& i) { return i.id == id; });
  if (it == items.end()) {
    return core::not_found(
        "download.not_found",
        "There is no download '" + std::string(id) + "'; GET /api/v1/downloads lists them.", "id");
  }
  QueueItem out = *it;
  const auto refuse = [&](std::string_view allowed) {
    return core::Error(core::Errc::conflict, "download.bad_state",
                       "cannot " + std::string(to_string(command)) + " download " + out.id +
                           ": it is " + std::string(store::to_string(out.state)) + "; " +
                           std::string(to_string(command)) + " applies to " + std::string(allowed) +
                           " downloads",
                       "id");
  };
  switch (command) {
    case QueueCommand::pause:
      if (out.state != DownloadState::queued && out.state != DownloadState::downloading) {
        return refuse("queued or downloading");
      }
      out.state = DownloadState::paused;
      return out;
    case QueueCommand::resume: {
      if (out.state != DownloadState::paused && out.state != DownloadState::failed &&
          out.state != DownloadState::cancelled) {
        return refuse("paused, failed or cancelled");
      }
      std::int64_t head = std::numeric_limits<std::int64_t>::max();
      for (const auto& i : items) {
        if (i.state == DownloadState::queued && i.id != out.id) head = std::min(head, i.position);
      }
      out.position =
          head == std::numeric_limits<std::int64_t>::max() ? submit_position(items) : head - 1;
      out.state = DownloadState::queued;
      return out;
    }
    case QueueCommand::cancel:
      if (out.state == DownloadState::completed || out.state == DownloadState::cancelled) {
        return refuse("queued, downloading, paused or failed");
      }
      out.state = DownloadState::cancelled;
      return out;
  }
  return out;
}

}  // namespace openstation::download

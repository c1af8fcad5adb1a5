#pragma once
/// The download queue's rules (issue [6]) as pure functions over the stored queue state, so every
/// rule is unit-tested without threads, sockets or files. The DownloadManager reads the rows,
/// applies one function and writes back the rows it changed.
///
///     submit ─► queued ──(first in line, nothing downloading)──► downloading ─► completed
///                 ▲  │pause                           │pause │fail       │cancel
///                 │  ▼                                ▼      ▼           ▼
///     resume/retry ─ paused ◄─────────────────────── paused  failed    cancelled
///     (from paused, failed or cancelled: queued right after the one downloading; with several
///      started this way, the one started last goes first among them)
///
/// Order: lower `position` first. One download runs at a time: the one in state downloading,
/// else the queued one with the lowest position.

#include "core/error.hpp"
#include "store/types.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace openstation::download {

/// A queue row as the rules see it.
struct QueueItem {
  std::string id;
  store::DownloadState state = store::DownloadState::queued;
  std::int64_t position = 0;

  friend bool operator==(const QueueItem&, const QueueItem&) = default;
};

/// What the user asks.
enum class QueueCommand { pause, resume, cancel };

/// The position of a new download: after every other row.
std::int64_t submit_position(const std::vector<QueueItem>& items);

/// The download that should run now: the one downloading (after a restart it resumes), else
/// the queued one with the lowest position; nullopt when none.
std::optional<std::string> next_to_run(const std::vector<QueueItem>& items);

/// The row `id` after `command`. Errors: download.not_found; download.bad_state (conflict)
/// naming the state and what is allowed: pause needs queued or downloading; resume needs
/// paused, failed or cancelled; cancel needs anything but completed or cancelled.
/// Resuming puts the row at the head of the queued rows (position = lowest queued − 1), which
/// is "right after the one downloading" and makes the last one started go first.
core::Result<QueueItem> apply(const std::vector<QueueItem>& items, std::string_view id,
                              QueueCommand command);

/// "pause" / "resume" / "cancel".
std::string_view to_string(QueueCommand c) noexcept;

}  // namespace openstation::download

#pragma once
/// Metering: token counts from an engine's responses, and the stream filter that drops the usage
/// chunk the gateway asked for on a client's behalf.
///
/// A streamed completion with `stream_options.include_usage` ends, before `data: [DONE]`, with a
/// chunk whose "choices" is empty and whose "usage" holds the counts (vLLM, SGLang and llama.cpp
/// all do this); the chunks before it carry "usage": null (as OpenAI's API does). Neither a
/// response nor a chunk is parsed into a document: a scan of the top-level members finds "usage",
/// "choices" and the error markers, and only the usage object's counts are read, so a token chunk
/// costs one pass over its bytes.

#include <cstdint>
#include <optional>
#include <string_view>

namespace openstation::gateway {

/// Token counts of one request.
struct Usage {
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
  std::int64_t total_tokens = 0;
  bool reported = false;  ///< the engine sent a usage object
};

/// The usage object of a complete (non-streamed) JSON response; `reported` false when absent.
Usage usage_of_response(std::string_view body);

/// Follows one SSE stream's `data:` payloads.
class StreamMeter {
 public:
  /// `keep_usage_chunk`: the client asked for usage itself, so the usage chunk is forwarded.
  explicit StreamMeter(bool keep_usage_chunk) : keep_usage_chunk_(keep_usage_chunk) {}

  /// What to do with one event's data.
  enum class Verdict { forward, drop };
  /// Reads one event's data ("[DONE]" included). Returns drop for the usage-only chunk the
  /// client did not ask for.
  Verdict on_data(std::string_view data);

  const Usage& usage() const { return usage_; }
  /// Data events that carried content (not the usage chunk, not [DONE]).
  std::int64_t content_events() const { return content_events_; }
  /// True once "[DONE]" was seen.
  bool done() const { return done_; }
  /// An engine error event ({"error": ...} as data) was seen.
  bool saw_error() const { return saw_error_; }

 private:
  bool keep_usage_chunk_;
  Usage usage_{};
  std::int64_t content_events_ = 0;
  bool done_ = false;
  bool saw_error_ = false;
};

}  // namespace openstation::gateway

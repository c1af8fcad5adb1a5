// The stand-in engine's HTTP API: OpenAI-compatible routes with deterministic tokens.
#include "fake_engine.hpp"

// GCC 12 reports a false -Wmismatched-new-delete on Asio coroutine frames (awaitable_frame_base
// has its own operator new/delete); the frames are allocated and freed by the same pair.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <vector>

#include <openssl/evp.h>
#include <time.h>

namespace openstation::fake_engine {

namespace {

namespace json = boost::json;
using http::Awaitable;
using http::Request;
using http::Response;
using http::ResponseStream;

constexpr std::string_view kWords[] = {
    "the",   "quick", "brown", "fox",    "jumps", "over", "a",     "lazy",
    "dog",   "while", "seven", "small",  "birds", "sing", "under", "green",
    "trees", "and",   "blue",  "rivers", "run",   "past", "old",   "stone",
    "walls", "into",  "the",   "deep",   "quiet", "sea",  "at",    "dawn"};

/// CLOCK_MONOTONIC in nanoseconds (the clock bench/gateway's load generator reads).
std::int64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

bool is_vllm(const EngineState& s) {
  return s.kind != core::EngineKind::sglang;
}

/// Whitespace tokenisation: the token count of a text.
std::int64_t count_tokens(std::string_view text) {
  std::int64_t n = 0;
  bool in_word = false;
  for (char c : text) {
    const bool space = c == ' ' || c == '\n' || c == '\t' || c == '\r';
    if (!space && !in_word) ++n;
    in_word = !space;
  }
  return n;
}

/// An OpenAI-format error in the engine's own shape: vLLM >= 0.8 nests it under "error", older
/// vLLM and SGLang answer flat {"object": "error", ...}.
Response openai_error(const EngineState& s, int status, std::string type, std::string message,
                      std::string param = {}) {
  json::object e;
  e["message"] = message;
  e["type"] = type;
  e["param"] = param.empty() ? json::value(nullptr) : json::value(param);
  e["code"] = status;
  const bool nested = is_vllm(s) && s.version.rfind("0.7", 0) != 0;
  if (nested) {
    json::object o;
    o["error"] = std::move(e);
    return Response::json(status, json::serialize(o));
  }
  e["object"] = "error";
  return Response::json(status, json::serialize(e));
}

std::string completion_id(const char* prefix, std::int64_t n) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s-%016llx", prefix,
                static_cast<unsigned long long>(n) * 2654435761ull);
  return buf;
}

/// The text of a chat message's content: a string or [{type: text, text}].
std::string content_text(const json::value& v) {
  if (v.is_string()) return std::string(v.as_string());
  std::string out;
  if (v.is_array()) {
    for (const auto& part : v.as_array()) {
      if (!part.is_object()) continue;
      if (auto* t = part.as_object().if_contains("text"); t && t->is_string()) {
        if (!out.empty()) out += " ";
        out += t->as_string();
      }
    }
  }
  return out;
}

/// What one generation request asks for.
struct Generation {
  bool chat = true;
  bool stream = false;
  bool include_usage = false;
  std::string model;
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
  std::string finish_reason = "stop";
  std::int64_t seed = 0;
  std::string id;
};

std::string token_text(const Generation& g, std::int64_t i) {
  std::string w(kWords[static_cast<std::size_t>(g.seed + i) % std::size(kWords)]);
  return i == 0 ? w : " " + w;
}

json::object usage_json(const Generation& g) {
  json::object u;
  u["prompt_tokens"] = g.prompt_tokens;
  u["completion_tokens"] = g.completion_tokens;
  u["total_tokens"] = g.prompt_tokens + g.completion_tokens;
  return u;
}

class Api {
 public:
  explicit Api(EngineState& s) : s_(s) {}

  /// Checks auth, crash and hang injection common to every /v1 request. Returns a response to
  /// send instead of handling the request, or nothing.
  std::optional<Response> admit(const Request& req) {
    if (!s_.api_key.empty()) {
      auto auth = req.headers.get("authorization");
      if (!auth || *auth != "Bearer " + s_.api_key) {
        return Response::json(401, R"({"error":"Unauthorized"})");
      }
    }
    return std::nullopt;
  }

  void count_request() {
    const auto n = ++s_.requests;
    if (s_.crash_after >= 0 && n > s_.crash_after) {
      std::fprintf(stderr,
                   "ERROR: EngineCore encountered a fatal error (injected after %lld requests)\n",
                   static_cast<long long>(s_.crash_after));
      std::fflush(stderr);
      std::_Exit(s_.exit_code);
    }
  }

  Awaitable<void> hang(ResponseStream& out) { co_await out.wait_disconnected(); }

  Awaitable<void> pace(std::int64_t tokens) {
    if (s_.tokens_per_sec <= 0 || tokens <= 0) co_return;
    boost::asio::steady_timer t(co_await boost::asio::this_coro::executor);
    t.expires_after(std::chrono::microseconds(
        static_cast<std::int64_t>(static_cast<double>(tokens) * 1e6 / s_.tokens_per_sec)));
    co_await t.async_wait(boost::asio::use_awaitable);
  }

  /// Parses and validates a chat or completion body into `g`; an error response otherwise.
  std::optional<Response> parse_generation(const Request& req, bool chat, Generation& g) {
    json::value v;
    boost::system::error_code ec;
    v = json::parse(req.body, ec);
    if (ec || !v.is_object()) {
      return openai_error(s_, 400, "BadRequestError",
                          "request body is not a valid JSON object: " +
                              (ec ? ec.message() : std::string("expected an object")));
    }
    const auto& o = v.as_object();
    g.chat = chat;
    if (auto* m = o.if_contains("model")) {
      if (!m->is_string())
        return openai_error(s_, 400, "BadRequestError", "model must be a string", "model");
      g.model = std::string(m->as_string());
    } else {
      g.model = s_.served_name;
    }
    if (g.model != s_.served_name) {
      return openai_error(s_, 404, "NotFoundError", "The model `" + g.model + "` does not exist.",
                          "model");
    }
    std::string prompt;
    if (chat) {
      auto* msgs = o.if_contains("messages");
      if (msgs == nullptr || !msgs->is_array() || msgs->as_array().empty()) {
        return openai_error(s_, 400, "BadRequestError",
                            "messages must be a non-empty array of {role, content}", "messages");
      }
      for (const auto& m : msgs->as_array()) {
        if (!m.is_object() || !m.as_object().contains("role")) {
          return openai_error(s_, 400, "BadRequestError", "each message needs a role", "messages");
        }
        if (auto* c = m.as_object().if_contains("content")) {
          if (!prompt.empty()) prompt += "\n";
          prompt += content_text(*c);
        }
      }
    } else {
      auto* p = o.if_contains("prompt");
      if (p == nullptr)
        return openai_error(s_, 400, "BadRequestError", "prompt is required", "prompt");
      if (p->is_string()) {
        prompt = std::string(p->as_string());
      } else if (p->is_array()) {
        for (const auto& x : p->as_array()) {
          if (!x.is_string()) {
            return openai_error(s_, 400, "BadRequestError",
                                "prompt must be a string or a list of strings", "prompt");
          }
          if (!prompt.empty()) prompt += "\n";
          prompt += x.as_string();
        }
      } else {
        return openai_error(s_, 400, "BadRequestError",
                            "prompt must be a string or a list of strings", "prompt");
      }
    }
    g.prompt_tokens = count_tokens(prompt);
    g.seed = g.prompt_tokens;
    std::int64_t natural = s_.output_tokens;
    std::optional<std::int64_t> max_tokens;
    for (const char* key : {"max_tokens", "max_completion_tokens"}) {
      if (auto* mt = o.if_contains(key); mt && !mt->is_null()) {
        if (!mt->is_int64() || mt->as_int64() < 1) {
          return openai_error(s_, 400, "BadRequestError",
                              std::string(key) + " must be at least 1, got " + json::serialize(*mt),
                              key);
        }
        max_tokens = mt->as_int64();
      }
    }
    if (max_tokens && g.prompt_tokens + *max_tokens > s_.max_model_len) {
      return openai_error(
          s_, 400, "BadRequestError",
          "This model's maximum context length is " + std::to_string(s_.max_model_len) +
              " tokens. However, you requested " + std::to_string(g.prompt_tokens + *max_tokens) +
              " tokens (" + std::to_string(g.prompt_tokens) + " in the messages, " +
              std::to_string(*max_tokens) +
              " in the completion). Please reduce the length of the messages or completion.");
    }
    if (max_tokens && *max_tokens < natural) {
      g.completion_tokens = *max_tokens;
      g.finish_reason = "length";
    } else {
      g.completion_tokens = natural;
    }
    if (auto* st = o.if_contains("stream"); st && st->is_bool()) g.stream = st->as_bool();
    if (auto* so = o.if_contains("stream_options"); so && so->is_object()) {
      if (auto* iu = so->as_object().if_contains("include_usage"); iu && iu->is_bool()) {
        g.include_usage = iu->as_bool();
      }
    }
    g.id = completion_id(chat ? "chatcmpl" : "cmpl", s_.requests.load());
    return std::nullopt;
  }

  json::object chunk_base(const Generation& g) const {
    json::object c;
    c["id"] = g.id;
    c["object"] = g.chat ? "chat.completion.chunk" : "text_completion";
    c["created"] = s_.created;
    c["model"] = g.model;
    return c;
  }

  json::object choice_chunk(const Generation& g, std::string_view text, bool first,
                            const char* finish) const {
    json::object choice;
    choice["index"] = 0;
    if (g.chat) {
      json::object delta;
      if (first) delta["role"] = "assistant";
      if (first || !text.empty()) delta["content"] = text;
      choice["delta"] = std::move(delta);
    } else {
      choice["text"] = text;
    }
    choice["logprobs"] = nullptr;
    choice["finish_reason"] = finish ? json::value(finish) : json::value(nullptr);
    json::object c = chunk_base(g);
    json::array choices;
    choices.push_back(std::move(choice));
    c["choices"] = std::move(choices);
    if (g.include_usage) c["usage"] = nullptr;
    if (s_.stamp_events) c["os_emit_ns"] = monotonic_ns();
    return c;
  }

  void account(const Generation& g) {
    s_.prompt_tokens_total += g.prompt_tokens;
    s_.generation_tokens_total += g.completion_tokens;
    (g.finish_reason == "length" ? s_.success_length : s_.success_stop) += 1;
  }

  Awaitable<void> generate(Request& req, ResponseStream& out, bool chat) {
    if (auto r = admit(req)) {
      co_await out.respond(*r);
      co_return;
    }
    count_request();
    if (s_.hang_requests) {
      co_await hang(out);
      co_return;
    }
    Generation g;
    if (auto err = parse_generation(req, chat, g)) {
      co_await out.respond(*err);
      co_return;
    }
    struct Running {
      std::atomic<std::int64_t>& n;
      explicit Running(std::atomic<std::int64_t>& r) : n(r) { ++n; }
      ~Running() { --n; }
    } running{s_.running};

    if (!g.stream) {
      co_await pace(g.completion_tokens);
      std::string text;
      for (std::int64_t i = 0; i < g.completion_tokens; ++i) text += token_text(g, i);
      json::object choice;
      choice["index"] = 0;
      if (chat) {
        json::object msg;
        msg["role"] = "assistant";
        msg["content"] = text;
        choice["message"] = std::move(msg);
      } else {
        choice["text"] = text;
      }
      choice["logprobs"] = nullptr;
      choice["finish_reason"] = g.finish_reason;
      json::object body;
      body["id"] = g.id;
      body["object"] = chat ? "chat.completion" : "text_completion";
      body["created"] = s_.created;
      body["model"] = g.model;
      json::array choices;
      choices.push_back(std::move(choice));
      body["choices"] = std::move(choices);
      body["usage"] = usage_json(g);
      account(g);
      co_await out.respond(Response::json(200, json::serialize(body)));
      co_return;
    }

    if (!co_await out.start_sse()) co_return;
    if (chat) {
      if (!co_await out.write(
              http::format_sse_data(json::serialize(choice_chunk(g, "", true, nullptr))))) {
        co_return;
      }
    }
    for (std::int64_t i = 0; i < g.completion_tokens; ++i) {
      co_await pace(1);
      const std::string text = token_text(g, i);
      if (!co_await out.write(
              http::format_sse_data(json::serialize(choice_chunk(g, text, false, nullptr))))) {
        co_return;  // the client left: stop generating
      }
      const auto streamed = ++s_.streamed_tokens;
      if (s_.crash_after_tokens >= 0 && streamed >= s_.crash_after_tokens) {
        std::fprintf(
            stderr,
            "ERROR: EngineCore encountered a fatal error (injected after %lld streamed tokens)\n",
            static_cast<long long>(streamed));
        std::fflush(stderr);
        std::_Exit(s_.exit_code);
      }
    }
    if (!co_await out.write(http::format_sse_data(
            json::serialize(choice_chunk(g, "", false, g.finish_reason.c_str()))))) {
      co_return;
    }
    if (g.include_usage) {
      json::object c = chunk_base(g);
      c["choices"] = json::array();
      c["usage"] = usage_json(g);
      if (!co_await out.write(http::format_sse_data(json::serialize(c)))) co_return;
    }
    account(g);
    co_await out.write(http::format_sse_data("[DONE]"));
    co_await out.finish();
  }

  Awaitable<void> embeddings(Request& req, ResponseStream& out) {
    if (auto r = admit(req)) {
      co_await out.respond(*r);
      co_return;
    }
    count_request();
    if (s_.hang_requests) {
      co_await hang(out);
      co_return;
    }
    boost::system::error_code ec;
    json::value v = json::parse(req.body, ec);
    if (ec || !v.is_object()) {
      co_await out.respond(
          openai_error(s_, 400, "BadRequestError", "request body is not a valid JSON object"));
      co_return;
    }
    const auto& o = v.as_object();
    std::string model = s_.served_name;
    if (auto* m = o.if_contains("model"); m && m->is_string()) model = std::string(m->as_string());
    if (model != s_.served_name) {
      co_await out.respond(openai_error(s_, 404, "NotFoundError",
                                        "The model `" + model + "` does not exist.", "model"));
      co_return;
    }
    std::vector<std::string> inputs;
    auto* in = o.if_contains("input");
    if (in != nullptr && in->is_string()) {
      inputs.emplace_back(in->as_string());
    } else if (in != nullptr && in->is_array() && !in->as_array().empty()) {
      for (const auto& x : in->as_array()) {
        if (!x.is_string()) {
          inputs.clear();
          break;
        }
        inputs.emplace_back(x.as_string());
      }
    }
    if (inputs.empty()) {
      co_await out.respond(openai_error(s_, 400, "BadRequestError",
                                        "input must be a string or a non-empty list of strings",
                                        "input"));
      co_return;
    }
    // "float" (the default) or "base64": little-endian float32 bytes, as vLLM answers the
    // official clients, which ask for base64 unless told otherwise.
    bool base64 = false;
    if (auto* f = o.if_contains("encoding_format"); f != nullptr && !f->is_null()) {
      base64 = f->is_string() && f->as_string() == "base64";
      if (!base64 && !(f->is_string() && f->as_string() == "float")) {
        co_await out.respond(openai_error(s_, 400, "BadRequestError",
                                          "encoding_format must be \"float\" or \"base64\"",
                                          "encoding_format"));
        co_return;
      }
    }
    json::array data;
    std::int64_t tokens = 0;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      tokens += count_tokens(inputs[i]);
      const std::size_t h = std::hash<std::string>{}(inputs[i]);
      std::vector<double> vec(static_cast<std::size_t>(s_.embedding_dim));
      double norm = 0;
      for (std::size_t k = 0; k < vec.size(); ++k) {
        vec[k] = std::sin(static_cast<double>((h % 100003) + k * 7919));
        norm += vec[k] * vec[k];
      }
      norm = std::sqrt(norm);
      json::object item;
      item["object"] = "embedding";
      item["index"] = i;
      if (base64) {
        std::string bytes;
        for (double x : vec) {
          const float f = norm > 0 ? static_cast<float>(x / norm) : 0.0f;
          char b[sizeof f];
          std::memcpy(b, &f, sizeof f);  // x86-64 and aarch64 are little-endian
          bytes.append(b, sizeof f);
        }
        std::string text(4 * ((bytes.size() + 2) / 3) + 1, '\0');
        const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(text.data()),
                                      reinterpret_cast<const unsigned char*>(bytes.data()),
                                      static_cast<int>(bytes.size()));
        text.resize(static_cast<std::size_t>(n));
        item["embedding"] = text;
      } else {
        json::array e;
        for (double x : vec) e.push_back(norm > 0 ? x / norm : 0.0);
        item["embedding"] = std::move(e);
      }
      data.push_back(std::move(item));
    }
    s_.prompt_tokens_total += tokens;
    json::object body;
    body["object"] = "list";
    body["id"] = completion_id("embd", s_.requests.load());
    body["created"] = s_.created;
    body["model"] = model;
    body["data"] = std::move(data);
    json::object usage;
    usage["prompt_tokens"] = tokens;
    usage["total_tokens"] = tokens;
    body["usage"] = std::move(usage);
    co_await out.respond(Response::json(200, json::serialize(body)));
  }

  Response models() const {
    json::object m;
    m["id"] = s_.served_name;
    m["object"] = "model";
    m["created"] = s_.created;
    m["owned_by"] = is_vllm(s_) ? "vllm" : "sglang";
    m["root"] = s_.model_path;
    m["parent"] = nullptr;
    m["max_model_len"] = s_.max_model_len;
    json::array data;
    data.push_back(std::move(m));
    json::object body;
    body["object"] = "list";
    body["data"] = std::move(data);
    return Response::json(200, json::serialize(body));
  }

  Response metrics() const {
    const std::string p = is_vllm(s_) ? "vllm:" : "sglang:";
    const std::string label = "{model_name=\"" + s_.served_name + "\"}";
    std::string out;
    auto metric = [&](const std::string& name, const char* type, const char* help,
                      const std::string& labels, double value) {
      out += "# HELP " + p + name + " " + help + "\n# TYPE " + p + name + " " + type + "\n";
      char num[64];
      std::snprintf(num, sizeof num, "%.1f", value);
      out += p + name + labels + " " + num + "\n";
    };
    const auto d = [](const std::atomic<std::int64_t>& a) { return static_cast<double>(a.load()); };
    if (is_vllm(s_)) {
      metric("num_requests_running", "gauge", "Number of requests in model execution batches.",
             label, d(s_.running));
      metric("num_requests_waiting", "gauge", "Number of requests waiting to be processed.", label,
             0);
      metric("gpu_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.", label,
             0);
      metric("prompt_tokens_total", "counter", "Number of prefill tokens processed.", label,
             d(s_.prompt_tokens_total));
      metric("generation_tokens_total", "counter", "Number of generation tokens processed.", label,
             d(s_.generation_tokens_total));
      out +=
          "# HELP vllm:request_success_total Count of successfully processed requests.\n"
          "# TYPE vllm:request_success_total counter\n";
      char num[160];
      std::snprintf(
          num, sizeof num,
          "vllm:request_success_total{finished_reason=\"stop\",model_name=\"%s\"} %.1f\n"
          "vllm:request_success_total{finished_reason=\"length\",model_name=\"%s\"} %.1f\n",
          s_.served_name.c_str(), d(s_.success_stop), s_.served_name.c_str(), d(s_.success_length));
      out += num;
    } else {
      metric("num_running_reqs", "gauge", "The number of running requests.", label, d(s_.running));
      metric("num_queue_reqs", "gauge", "The number of requests in the waiting queue.", label, 0);
      metric("prompt_tokens_total", "counter", "Number of prefill tokens processed.", label,
             d(s_.prompt_tokens_total));
      metric("generation_tokens_total", "counter", "Number of generation tokens processed.", label,
             d(s_.generation_tokens_total));
    }
    return Response::text(200, std::move(out), "text/plain; version=0.0.4; charset=utf-8");
  }

 private:
  EngineState& s_;
};

}  // namespace

void add_routes(http::Server& server, EngineState& state) {
  auto api = std::make_shared<Api>(state);
  server.stream("GET", "/health", [api, &state](Request&, ResponseStream& out) -> Awaitable<void> {
    if (state.hang_health) {
      co_await api->hang(out);
      co_return;
    }
    co_await out.respond(Response::text(200, ""));
  });
  server.route("GET", "/version", [&state](Request&) -> Awaitable<Response> {
    co_return Response::json(200, "{\"version\":\"" + state.version + "\"}");
  });
  server.route("GET", "/metrics",
               [api](Request&) -> Awaitable<Response> { co_return api->metrics(); });
  server.route("GET", "/v1/models", [api](Request& req) -> Awaitable<Response> {
    if (auto r = api->admit(req)) co_return std::move(*r);
    co_return api->models();
  });
  server.stream("POST", "/v1/chat/completions",
                [api](Request& req, ResponseStream& out) -> Awaitable<void> {
                  co_await api->generate(req, out, true);
                });
  server.stream("POST", "/v1/completions",
                [api](Request& req, ResponseStream& out) -> Awaitable<void> {
                  co_await api->generate(req, out, false);
                });
  server.stream("POST", "/v1/embeddings",
                [api](Request& req, ResponseStream& out) -> Awaitable<void> {
                  co_await api->embeddings(req, out);
                });
}

}  // namespace openstation::fake_engine

// Runs the real fake-engine binary as a child process on a free port and checks what the
// gateway, agent and server tests rely on: the command lines it accepts and refuses, the
// simulated GPUs, the OpenAI API (streamed and not, usage), /metrics and fault injection.
#include "http/client.hpp"
#include "support/model_fixtures.hpp"

#include <boost/json.hpp>

#include <gtest/gtest.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

namespace openstation {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

fs::path scratch() {
  static const fs::path dir = [] {
    auto d = fs::temp_directory_path() / ("fake_engine_test." + std::to_string(getpid()));
    fs::create_directories(d);
    return d;
  }();
  return dir;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// A free TCP port: bind port 0, read it, close (the caller retries on a rare conflict).
std::uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

/// One fake-engine process with its output in files.
class Engine {
 public:
  Engine(std::vector<std::string> argv, std::map<std::string, std::string> env) {
    static int counter = 0;
    const auto base = scratch() / ("run" + std::to_string(++counter));
    out_ = base.string() + ".out";
    err_ = base.string() + ".err";
    // Emptied here, before the child exists: the directory is named after this process's pid,
    // which an earlier test process may have had, and wait_ready() must never read the
    // readiness line of that process's engine (truncated only by the child, it could).
    for (const auto& f : {out_, err_}) {
      const int fd = ::open(f.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) ::close(fd);
    }
    pid_ = ::fork();
    if (pid_ == 0) {
      int o = ::open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int e = ::open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(o, 1);
      ::dup2(e, 2);
      for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
  }
  ~Engine() {
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  /// Waits for the process to exit; its exit code, or -1 after `limit`.
  int wait_exit(std::chrono::milliseconds limit = 20s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        exited_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(5ms);  // polling a child's state, not timing the test
    }
    return -1;
  }
  /// Waits until stdout shows the readiness line (true) or the process exits (false).
  bool wait_ready(std::chrono::milliseconds limit = 20s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (stdout_text().find("Uvicorn running on") != std::string::npos) return true;
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        exited_ = true;
        return false;
      }
      std::this_thread::sleep_for(5ms);
    }
    return false;
  }
  void terminate() { ::kill(pid_, SIGTERM); }
  std::string stdout_text() const { return read_text(out_); }
  std::string stderr_text() const { return read_text(err_); }

 private:
  pid_t pid_ = -1;
  bool exited_ = false;
  std::string out_, err_;
};

const char* const kModel = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B";

fs::path inventory(const std::string& name, const std::string& gpu, int mib, const std::string& cc,
                   int count = 1) {
  std::string gpus;
  for (int i = 0; i < count; ++i) {
    if (i) gpus += ",";
    gpus += R"({"index":)" + std::to_string(i) + R"(,"name":")" + gpu + R"(","uuid":"GPU-)" + name +
            std::to_string(i) + R"(","memory_total_mib":)" + std::to_string(mib) +
            R"(,"memory_used_mib":0,"compute_capability":")" + cc + "\"}";
  }
  const auto p = scratch() / (name + ".json");
  std::ofstream(p)
      << R"({"name":")" << name
      << R"(","type":"gpu","cpu_cores":16,"memory_mib":131072,"disk_free_gib":500,"gpus":[)" << gpus
      << "]}";
  return p;
}

fs::path a100() {
  return inventory("a100", "NVIDIA A100-SXM4-80GB", 81920, "8.0", 2);
}
fs::path t4() {
  return inventory("t4", "Tesla T4", 15360, "7.5");
}

/// A running engine on a free port, with a client pointed at it.
struct Running {
  std::unique_ptr<Engine> engine;
  std::string base;
};

Running start_vllm(std::vector<std::string> extra = {}, std::map<std::string, std::string> env = {},
                   const std::string& model = kModel) {
  if (!env.count("OPENSTATION_FAKE_GPU_INVENTORY"))
    env["OPENSTATION_FAKE_GPU_INVENTORY"] = a100().string();
  for (int attempt = 0; attempt < 3; ++attempt) {
    const auto port = free_port();
    std::vector<std::string> argv{
        OPENSTATION_FAKE_ENGINE, "vllm", "serve", model, "--host", "127.0.0.1", "--port",
        std::to_string(port)};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto e = std::make_unique<Engine>(argv, env);
    if (e->wait_ready()) return {std::move(e), "http://127.0.0.1:" + std::to_string(port)};
    if (e->stderr_text().find("Errno 98") == std::string::npos) {
      ADD_FAILURE() << "fake-engine did not start: " << e->stderr_text();
      return {};
    }
  }
  ADD_FAILURE() << "no free port after 3 tries";
  return {};
}

boost::json::object parse_obj(const std::string& s) {
  return boost::json::parse(s).as_object();
}

std::string chat_body(bool stream, int max_tokens = 0, bool usage = false,
                      const std::string& model = kModel) {
  std::string b =
      R"({"model":")" + model +
      R"(","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hello there engine"}])";
  if (stream) b += R"(,"stream":true)";
  if (usage) b += R"(,"stream_options":{"include_usage":true})";
  if (max_tokens) b += R"(,"max_tokens":)" + std::to_string(max_tokens);
  return b + "}";
}

TEST(FakeEngine, UnknownFlagIsAnArgparseErrorExit2) {
  Engine e({OPENSTATION_FAKE_ENGINE, "vllm", "serve", kModel, "--foo", "1"}, {});
  EXPECT_EQ(e.wait_exit(), 2);
  EXPECT_NE(e.stderr_text().find("vllm serve: error: unrecognized arguments: --foo"),
            std::string::npos)
      << e.stderr_text();

  Engine s({OPENSTATION_SGLANG_WRAPPER, "-m", "sglang.launch_server", "--model-path", kModel,
            "--no-such-flag"},
           {{"FAKE_ENGINE_BIN", OPENSTATION_FAKE_ENGINE},
            {"OPENSTATION_FAKE_GPU_INVENTORY", a100().string()}});
  EXPECT_EQ(s.wait_exit(), 2);
  EXPECT_NE(s.stderr_text().find("launch_server.py: error: unrecognized arguments: --no-such-flag"),
            std::string::npos)
      << s.stderr_text();
}

TEST(FakeEngine, BadValueIsAnArgparseError) {
  Engine e({OPENSTATION_FAKE_ENGINE, "vllm", "serve", kModel, "--dtype", "bf17"},
           {{"OPENSTATION_FAKE_GPU_INVENTORY", a100().string()}});
  EXPECT_EQ(e.wait_exit(), 2);
  EXPECT_NE(e.stderr_text().find("vllm serve: error: argument --dtype"), std::string::npos)
      << e.stderr_text();
}

TEST(FakeEngine, Bf16OnT4IsRefusedWithTheRealMessage) {
  Engine e({OPENSTATION_FAKE_ENGINE, "vllm", "serve", kModel, "--dtype", "bfloat16"},
           {{"OPENSTATION_FAKE_GPU_INVENTORY", t4().string()}});
  EXPECT_EQ(e.wait_exit(), 1);
  EXPECT_NE(e.stderr_text().find("Bfloat16 is only supported on GPUs with compute capability of "
                                 "at least 8.0. Your Tesla T4 GPU has compute capability 7.5."),
            std::string::npos)
      << e.stderr_text();
  // vLLM 0.7 refuses bf16 models with --dtype auto too; the same with half starts.
  Engine old({OPENSTATION_FAKE_ENGINE, "vllm", "serve", kModel},
             {{"OPENSTATION_FAKE_GPU_INVENTORY", t4().string()}, {"FAKE_ENGINE_VERSION", "0.7.3"}});
  EXPECT_EQ(old.wait_exit(), 1);
  EXPECT_NE(old.stderr_text().find("Bfloat16 is only supported"), std::string::npos);
  auto ok = start_vllm({"--dtype", "half", "--max-model-len", "4096"},
                       {{"OPENSTATION_FAKE_GPU_INVENTORY", t4().string()}});
  EXPECT_TRUE(ok.engine);
}

TEST(FakeEngine, ModelTooLargeFailsWhereTheEstimatorSays) {
  Engine e({OPENSTATION_FAKE_ENGINE, "vllm", "serve", "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
            "--dtype", "half"},
           {{"OPENSTATION_FAKE_GPU_INVENTORY", t4().string()}});
  EXPECT_EQ(e.wait_exit(), 1);
  EXPECT_NE(e.stderr_text().find("CUDA out of memory"), std::string::npos) << e.stderr_text();

  // A context the KV cache cannot hold: vLLM's KV cache message with the estimator's numbers.
  Engine kv(
      {OPENSTATION_FAKE_ENGINE, "vllm", "serve", kModel, "--dtype", "half",
       "--gpu-memory-utilization", "0.3", "--max-model-len", "131072"},
      {{"OPENSTATION_FAKE_GPU_INVENTORY", t4().string()}, {"VLLM_ALLOW_LONG_MAX_MODEL_LEN", "1"}});
  EXPECT_EQ(kv.wait_exit(), 1);
  const auto err = kv.stderr_text();
  EXPECT_TRUE(err.find("KV cache") != std::string::npos ||
              err.find("No available memory for the cache blocks") != std::string::npos)
      << err;
}

TEST(FakeEngine, ModelDirectoryIsInspected) {
  const auto dir = scratch() / "tiny-qwen2";
  if (!fs::exists(dir / "config.json"))
    fixtures::make_hf_model_dir(dir, fixtures::tiny_qwen2_arch());
  auto r = start_vllm({"--served-model-name", "tiny"}, {}, dir.string());
  ASSERT_TRUE(r.engine);
  http::Client c;
  auto models = c.get(r.base + "/v1/models");
  ASSERT_TRUE(models);
  auto o = parse_obj(models->body);
  EXPECT_EQ(o["data"].as_array()[0].as_object()["id"].as_string(), "tiny");
}

TEST(FakeEngine, ServesHealthModelsAndChat) {
  auto r = start_vllm();
  ASSERT_TRUE(r.engine);
  http::Client c;
  auto health = c.get(r.base + "/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);

  auto models = c.get(r.base + "/v1/models");
  ASSERT_TRUE(models);
  auto mo = parse_obj(models->body);
  EXPECT_EQ(mo["data"].as_array()[0].as_object()["id"].as_string(), kModel);

  auto chat = c.post_json(r.base + "/v1/chat/completions", chat_body(false));
  ASSERT_TRUE(chat);
  ASSERT_EQ(chat->status, 200) << chat->body;
  auto co = parse_obj(chat->body);
  const auto& usage = co["usage"].as_object();
  EXPECT_EQ(usage.at("prompt_tokens").as_int64(), 5);  // "be brief" + "hello there engine"
  EXPECT_EQ(usage.at("completion_tokens").as_int64(), 16);
  EXPECT_EQ(usage.at("total_tokens").as_int64(), 21);
  const auto& choice = co["choices"].as_array()[0].as_object();
  EXPECT_EQ(choice.at("finish_reason").as_string(), "stop");
  const std::string text(choice.at("message").as_object().at("content").as_string());
  // Deterministic: the same request gives the same text.
  auto again = c.post_json(r.base + "/v1/chat/completions", chat_body(false));
  ASSERT_TRUE(again);
  EXPECT_EQ(parse_obj(again->body)["choices"]
                .as_array()[0]
                .as_object()["message"]
                .as_object()["content"]
                .as_string(),
            text);

  auto limited = c.post_json(r.base + "/v1/chat/completions", chat_body(false, 3));
  ASSERT_TRUE(limited);
  auto lo = parse_obj(limited->body);
  EXPECT_EQ(lo["usage"].as_object()["completion_tokens"].as_int64(), 3);
  EXPECT_EQ(lo["choices"].as_array()[0].as_object()["finish_reason"].as_string(), "length");

  auto comp =
      c.post_json(r.base + "/v1/completions", R"({"model":")" + std::string(kModel) +
                                                  R"(","prompt":"one two","max_tokens":2})");
  ASSERT_TRUE(comp);
  auto cp = parse_obj(comp->body);
  EXPECT_EQ(cp["object"].as_string(), "text_completion");
  EXPECT_EQ(cp["usage"].as_object()["prompt_tokens"].as_int64(), 2);
  EXPECT_EQ(cp["usage"].as_object()["total_tokens"].as_int64(), 4);

  auto emb = c.post_json(r.base + "/v1/embeddings",
                         R"({"model":")" + std::string(kModel) + R"(","input":["a b","c"]})");
  ASSERT_TRUE(emb);
  auto eo = parse_obj(emb->body);
  ASSERT_EQ(eo["data"].as_array().size(), 2u);
  EXPECT_EQ(eo["data"].as_array()[0].as_object()["embedding"].as_array().size(), 8u);
  EXPECT_EQ(eo["usage"].as_object()["prompt_tokens"].as_int64(), 3);

  auto metrics = c.get(r.base + "/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("vllm:num_requests_running{model_name=\""), std::string::npos);
  EXPECT_NE(metrics->body.find("vllm:prompt_tokens_total"), std::string::npos);
  EXPECT_NE(metrics->body.find("vllm:generation_tokens_total{model_name=\"" + std::string(kModel) +
                               "\"} 37.0"),
            std::string::npos)
      << metrics->body;  // 16 + 16 + 3 + 2 (completions) = 37
}

TEST(FakeEngine, OpenAiErrors) {
  auto r = start_vllm();
  ASSERT_TRUE(r.engine);
  http::Client c;
  auto unknown = c.post_json(r.base + "/v1/chat/completions", chat_body(false, 0, false, "nope"));
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 404);
  EXPECT_NE(unknown->body.find("The model `nope` does not exist."), std::string::npos);
  auto bad = c.post_json(r.base + "/v1/chat/completions", "{not json");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  auto eo = parse_obj(bad->body);
  EXPECT_EQ(eo["error"].as_object()["type"].as_string(), "BadRequestError");
  auto no_msgs =
      c.post_json(r.base + "/v1/chat/completions", R"({"model":")" + std::string(kModel) + "\"}");
  ASSERT_TRUE(no_msgs);
  EXPECT_EQ(no_msgs->status, 400);
}

TEST(FakeEngine, StreamsChunksWithUsage) {
  auto r = start_vllm();
  ASSERT_TRUE(r.engine);
  http::Client c;
  auto s = c.post_json(r.base + "/v1/chat/completions", chat_body(true, 4, true));
  ASSERT_TRUE(s);
  EXPECT_EQ(s->headers.get("content-type").value_or(""), "text/event-stream");
  http::SseParser p;
  ASSERT_TRUE(p.feed(s->body));
  std::vector<std::string> datas;
  while (auto e = p.next()) datas.push_back(e->data);
  // role chunk, 4 tokens, finish chunk, usage chunk, [DONE]
  ASSERT_EQ(datas.size(), 8u) << s->body;
  EXPECT_EQ(datas.back(), "[DONE]");
  auto usage = parse_obj(datas[6]);
  EXPECT_TRUE(usage["choices"].as_array().empty());
  EXPECT_EQ(usage["usage"].as_object()["completion_tokens"].as_int64(), 4);
  EXPECT_EQ(usage["usage"].as_object()["prompt_tokens"].as_int64(), 5);
  EXPECT_EQ(parse_obj(datas[5])["choices"].as_array()[0].as_object()["finish_reason"].as_string(),
            "length");

  auto no_usage = c.post_json(r.base + "/v1/chat/completions", chat_body(true, 2));
  ASSERT_TRUE(no_usage);
  EXPECT_EQ(no_usage->body.find("\"usage\""), std::string::npos);
}

/// CLOCK_MONOTONIC in nanoseconds, the clock FAKE_ENGINE_STAMP_EVENTS stamps with.
std::int64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

TEST(FakeEngine, StampsStreamedChunksWhenAsked) {
  auto r = start_vllm({}, {{"FAKE_ENGINE_STAMP_EVENTS", "1"}});
  ASSERT_TRUE(r.engine);
  http::Client c;
  const auto before = monotonic_ns();
  auto s = c.post_json(r.base + "/v1/chat/completions", chat_body(true, 3));
  const auto after = monotonic_ns();
  ASSERT_TRUE(s);
  http::SseParser p;
  ASSERT_TRUE(p.feed(s->body));
  std::int64_t last = 0;
  int stamped = 0;
  while (auto e = p.next()) {
    if (e->data == "[DONE]") continue;
    const auto chunk = parse_obj(e->data);
    ASSERT_TRUE(chunk.contains("os_emit_ns")) << e->data;
    const auto stamp = chunk.at("os_emit_ns").as_int64();
    EXPECT_GE(stamp, before);
    EXPECT_LE(stamp, after);
    EXPECT_GE(stamp, last);  // in emission order
    last = stamp;
    ++stamped;
  }
  EXPECT_EQ(stamped, 5);  // role chunk, 3 tokens, finish chunk

  auto plain = start_vllm();
  ASSERT_TRUE(plain.engine);
  auto u = c.post_json(plain.base + "/v1/chat/completions", chat_body(true, 3));
  ASSERT_TRUE(u);
  EXPECT_EQ(u->body.find("os_emit_ns"), std::string::npos);  // off by default
}

TEST(FakeEngine, ApiKeyIsEnforced) {
  auto r = start_vllm({"--api-key", "sk-test"});
  ASSERT_TRUE(r.engine);
  http::Client c;
  auto denied = c.get(r.base + "/v1/models");
  ASSERT_TRUE(denied);
  EXPECT_EQ(denied->status, 401);
  auto ok = c.request("GET", r.base + "/v1/models", {{"Authorization", "Bearer sk-test"}});
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
}

TEST(FakeEngine, CrashAfterNRequests) {
  auto r = start_vllm({}, {{"FAKE_ENGINE_CRASH_AFTER", "1"}, {"FAKE_ENGINE_EXIT_CODE", "3"}});
  ASSERT_TRUE(r.engine);
  http::Client c;
  auto first = c.post_json(r.base + "/v1/chat/completions", chat_body(false));
  ASSERT_TRUE(first);
  EXPECT_EQ(first->status, 200);
  auto second = c.post_json(r.base + "/v1/chat/completions", chat_body(false), 5s);
  EXPECT_FALSE(second);
  EXPECT_EQ(r.engine->wait_exit(), 3);
}

TEST(FakeEngine, DiesDuringStartupAndHangs) {
  Engine dies({OPENSTATION_FAKE_ENGINE, "vllm", "serve", kModel},
              {{"OPENSTATION_FAKE_GPU_INVENTORY", a100().string()},
               {"FAKE_ENGINE_DIE_DURING_STARTUP", "1"}});
  EXPECT_EQ(dies.wait_exit(), 1);
  EXPECT_NE(dies.stderr_text().find("Engine core initialization failed"), std::string::npos);

  Engine hangs(
      {OPENSTATION_FAKE_ENGINE, "vllm", "serve", kModel, "--port", std::to_string(free_port())},
      {{"OPENSTATION_FAKE_GPU_INVENTORY", a100().string()}, {"FAKE_ENGINE_HANG", "startup"}});
  EXPECT_FALSE(hangs.wait_ready(300ms));
  hangs.terminate();
  EXPECT_EQ(hangs.wait_exit(), 0);

  auto r = start_vllm({}, {{"FAKE_ENGINE_HANG", "request"}});
  ASSERT_TRUE(r.engine);
  http::Client c;
  auto health = c.get(r.base + "/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  auto stuck = c.post_json(r.base + "/v1/chat/completions", chat_body(false), 300ms);
  ASSERT_FALSE(stuck);
  EXPECT_EQ(stuck.error().code, "http.timeout");
}

TEST(FakeEngine, SglangPersonalityAndVllmCpu) {
  const auto port = free_port();
  Engine s({OPENSTATION_SGLANG_WRAPPER, "-m", "sglang.launch_server", "--model-path", kModel,
            "--port", std::to_string(port), "--tp-size", "1", "--served-model-name", "qwen"},
           {{"FAKE_ENGINE_BIN", OPENSTATION_FAKE_ENGINE},
            {"OPENSTATION_FAKE_GPU_INVENTORY", a100().string()}});
  ASSERT_TRUE(s.wait_ready()) << s.stderr_text();
  http::Client c;
  auto m = c.get("http://127.0.0.1:" + std::to_string(port) + "/metrics");
  ASSERT_TRUE(m);
  EXPECT_NE(m->body.find("sglang:num_running_reqs"), std::string::npos);
  auto chat = c.post_json("http://127.0.0.1:" + std::to_string(port) + "/v1/chat/completions",
                          chat_body(false, 0, false, "qwen"));
  ASSERT_TRUE(chat);
  EXPECT_EQ(chat->status, 200);

  // No visible GPUs: the vLLM personality is vLLM CPU.
  auto cpu = start_vllm({}, {{"CUDA_VISIBLE_DEVICES", ""}});
  ASSERT_TRUE(cpu.engine);
  EXPECT_NE(cpu.engine->stdout_text().find("stand-in engine"), std::string::npos);
}

}  // namespace
}  // namespace openstation

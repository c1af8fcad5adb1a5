// Node sync's agent side (agent/model_sync.hpp) over a fake ModelSource with faults: a pull into
// <data>/agent/models/<id>, resume after a cut and after a restart (a .part left on disk), a hash
// mismatch that stays → failed with the reason, an unreachable server, a full disk, shared
// storage detected (or not), one pull per model, the argv rewrite. ServerModelSource (HTTP) is
// driven end to end by tests/e2e/model_sync.sh.

#include "agent/model_sync.hpp"

#include "download/fetch.hpp"
#include "support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <mutex>

namespace openstation::agent {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using State = ModelSyncStatus::State;

std::string pattern(std::size_t n, int seed) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + seed) & 0xff);
  return s;
}

void write(const fs::path& p, const std::string& bytes) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << bytes;
}

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

/// Serves files from a map, with faults.
class FakeSource final : public ModelSource {
 public:
  ModelManifest manifest_;
  std::map<std::string, std::string> content;  // path → bytes
  std::atomic<int> manifest_failures{0};       // unavailable answers before a good one
  std::atomic<int> cuts{0};                    // fetches cut after `cut_after` bytes
  std::int64_t cut_after = 0;
  bool corrupt = false;  // flips a byte of every fetch
  std::atomic<int> manifests{0};
  std::mutex mutex;
  std::vector<std::pair<std::string, std::int64_t>> fetches;  // (path, offset)

  void add(const std::string& path, const std::string& bytes) {
    content[path] = bytes;
    download::Sha256 h;
    h.update(bytes);
    manifest_.files.push_back(
        ManifestFile{path, static_cast<std::int64_t>(bytes.size()), h.hex_digest()});
  }

  core::Result<ModelManifest> manifest(std::string_view) override {
    ++manifests;
    if (manifest_failures > 0) {
      --manifest_failures;
      return core::Error(core::Errc::unavailable, "http.connect", "connection refused");
    }
    return manifest_;
  }
  core::Result<void> fetch(std::string_view, std::string_view path, std::int64_t offset,
                           const download::ChunkSink& sink,
                           const std::function<bool()>& keep_going) override {
    {
      std::lock_guard lock(mutex);
      fetches.emplace_back(std::string(path), offset);
    }
    std::string bytes = content.at(std::string(path)).substr(static_cast<std::size_t>(offset));
    if (corrupt && !bytes.empty()) bytes[0] = static_cast<char>(bytes[0] ^ 1);
    std::size_t limit = bytes.size();
    bool cut = false;
    if (cuts > 0 && static_cast<std::int64_t>(limit) > cut_after) {
      --cuts;
      limit = static_cast<std::size_t>(cut_after);
      cut = true;
    }
    for (std::size_t at = 0; at < limit; at += 4096) {
      if (!keep_going()) return core::Error(core::Errc::unavailable, "hub.aborted", "stopped");
      if (!sink(std::string_view(bytes).substr(at, std::min<std::size_t>(4096, limit - at)))) {
        return core::Error(core::Errc::unavailable, "hub.aborted", "stopped");
      }
    }
    if (cut) return core::Error(core::Errc::unavailable, "hub.unavailable", "connection cut");
    return {};
  }
};

class ModelSyncTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing_support::unique_temp_path("modelsync");
    fs::remove_all(dir_);
    server_store_ = dir_ / "server-models";
    write(server_store_ / kStoreMarkerName, "store_abc\n");
    source_.manifest_.model_id = "mdl_1";
    source_.manifest_.name = "tiny";
    source_.manifest_.path = (server_store_ / "tiny").string();
    source_.manifest_.store_root = server_store_.string();
    source_.manifest_.store_id = "store_other";  // not shared unless a test says so
    source_.add("w.bin", pattern(300000, 1));
    source_.add("sub/config.json", "{\"hidden_size\": 8}");
    options_.data_dir = dir_ / "node";
    options_.retry_delay = 1ms;
    options_.failure_hold = 0ms;
  }
  void TearDown() override { fs::remove_all(dir_); }

  ModelSyncStatus pull(ModelSync& sync) {
    sync.request("mdl_1", source_.manifest_.path);
    EXPECT_TRUE(sync.wait_idle(20s));
    return *sync.status("mdl_1");
  }
  fs::path local() const { return options_.data_dir / "agent" / "models" / "mdl_1"; }

  fs::path dir_, server_store_;
  FakeSource source_;
  ModelSyncOptions options_;
  core::SystemClock clock_;
};

TEST_F(ModelSyncTest, PullsVerifiesAndReusesTheCopy) {
  {
    ModelSync sync(options_, source_, clock_);
    const auto first = sync.request("mdl_1", source_.manifest_.path);
    EXPECT_NE(first.state, State::ready);
    ASSERT_TRUE(sync.wait_idle(20s));
    const auto st = *sync.status("mdl_1");
    ASSERT_EQ(st.state, State::ready) << st.reason;
    EXPECT_FALSE(st.shared);
    EXPECT_EQ(st.local_path, local().string());
    EXPECT_EQ(st.bytes_done, st.bytes_total);
    EXPECT_EQ(read(local() / "w.bin"), source_.content["w.bin"]);
    EXPECT_EQ(read(local() / "sub" / "config.json"), source_.content["sub/config.json"]);
    EXPECT_TRUE(fs::exists(options_.data_dir / "agent" / "models" / ".complete" / "mdl_1.json"));
    EXPECT_FALSE(fs::exists(options_.data_dir / "agent" / "models" / ".staging" / "mdl_1"));
    // A second request in the same process: the same job, nothing fetched again.
    EXPECT_EQ(sync.request("mdl_1", source_.manifest_.path).state, State::ready);
  }
  const auto fetched = source_.fetches.size();
  EXPECT_EQ(fetched, 2u);
  // A new agent process: ready at once from the completion marker, without the server.
  ModelSync again(options_, source_, clock_);
  const auto manifests = source_.manifests.load();
  const auto st = again.request("mdl_1", source_.manifest_.path);
  EXPECT_EQ(st.state, State::ready);
  EXPECT_EQ(st.local_path, local().string());
  EXPECT_EQ(source_.manifests.load(), manifests);
  EXPECT_EQ(source_.fetches.size(), fetched);
}

TEST_F(ModelSyncTest, ResumesAfterACutFromTheBytesOnDisk) {
  source_.cuts = 1;
  source_.cut_after = 100000;
  ModelSync sync(options_, source_, clock_);
  const auto st = pull(sync);
  ASSERT_EQ(st.state, State::ready) << st.reason;
  EXPECT_EQ(read(local() / "w.bin"), source_.content["w.bin"]);
  std::vector<std::int64_t> offsets;
  for (const auto& [path, offset] : source_.fetches) {
    if (path == "w.bin") offsets.push_back(offset);
  }
  ASSERT_EQ(offsets.size(), 2u);
  EXPECT_EQ(offsets[0], 0);
  EXPECT_EQ(offsets[1], 100000);  // a Range from the .part's size, not from zero
}

TEST_F(ModelSyncTest, AnAgentRestartResumesThePartFile) {
  // What an earlier agent left: the first 120000 bytes in the staging .part.
  write(options_.data_dir / "agent" / "models" / ".staging" / "mdl_1" / "w.bin.part",
        source_.content["w.bin"].substr(0, 120000));
  ModelSync sync(options_, source_, clock_);
  const auto st = pull(sync);
  ASSERT_EQ(st.state, State::ready) << st.reason;
  EXPECT_EQ(read(local() / "w.bin"), source_.content["w.bin"]);
  for (const auto& [path, offset] : source_.fetches) {
    if (path == "w.bin") {
      EXPECT_EQ(offset, 120000);
    }
  }
}

TEST_F(ModelSyncTest, AHashMismatchThatStaysFailsWithTheReasonAndLeavesNothingUsable) {
  source_.corrupt = true;
  ModelSync sync(options_, source_, clock_);
  const auto st = pull(sync);
  ASSERT_EQ(st.state, State::failed);
  EXPECT_EQ(st.code, "model_sync.hash_mismatch");
  EXPECT_NE(st.reason.find("SHA-256"), std::string::npos) << st.reason;
  EXPECT_NE(st.reason.find("4 times"), std::string::npos) << st.reason;  // 1 + 3 retries
  EXPECT_FALSE(fs::exists(options_.data_dir / "agent" / "models" / ".complete" / "mdl_1.json"));
  // The corrupt file never entered the model directory (the small file that sorts first may).
  EXPECT_FALSE(fs::exists(local() / "w.bin"));
  EXPECT_FALSE(fs::exists(local() / "sub" / "config.json"));
  // A later request (the hold is 0 here) starts again; with a healthy source it succeeds.
  source_.corrupt = false;
  const auto again = pull(sync);
  EXPECT_EQ(again.state, State::ready) << again.reason;
}

TEST_F(ModelSyncTest, AnUnreachableServerFailsAfterTheRetries) {
  source_.manifest_failures = 100;
  ModelSync sync(options_, source_, clock_);
  const auto st = pull(sync);
  ASSERT_EQ(st.state, State::failed);
  EXPECT_EQ(st.code, "model_sync.unreachable");
  EXPECT_NE(st.reason.find("4 tries"), std::string::npos) << st.reason;
  EXPECT_EQ(source_.manifests.load(), 4);
}

TEST_F(ModelSyncTest, ABriefOutageIsRetried) {
  source_.manifest_failures = 2;
  ModelSync sync(options_, source_, clock_);
  EXPECT_EQ(pull(sync).state, State::ready);
}

TEST_F(ModelSyncTest, NotEnoughDiskFailsBeforeAByteIsFetched) {
  source_.manifest_.files.push_back(ManifestFile{"huge.bin", std::int64_t{1} << 60, "00"});
  ModelSync sync(options_, source_, clock_);
  const auto st = pull(sync);
  ASSERT_EQ(st.state, State::failed);
  EXPECT_EQ(st.code, "model_sync.disk_full");
  EXPECT_NE(st.reason.find("free"), std::string::npos) << st.reason;
  EXPECT_TRUE(source_.fetches.empty());
}

TEST_F(ModelSyncTest, SharedStorageIsDetectedNotAssumed) {
  // The server's files at the manifest's path.
  for (const auto& [path, bytes] : source_.content) write(server_store_ / "tiny" / path, bytes);
  // A different store id at the same path: not shared → pulled.
  {
    ModelSync sync(options_, source_, clock_);
    EXPECT_FALSE(shared_with_server(source_.manifest_));
    const auto st = pull(sync);
    EXPECT_EQ(st.state, State::ready);
    EXPECT_FALSE(st.shared);
    EXPECT_FALSE(source_.fetches.empty());
  }
  fs::remove_all(options_.data_dir);
  source_.fetches.clear();
  // The same id, every file with its size: shared → nothing pulled, the path is used as is.
  source_.manifest_.store_id = "store_abc";
  EXPECT_TRUE(shared_with_server(source_.manifest_));
  {
    ModelSync sync(options_, source_, clock_);
    const auto st = pull(sync);
    EXPECT_EQ(st.state, State::ready);
    EXPECT_TRUE(st.shared);
    EXPECT_TRUE(st.local_path.empty());
    EXPECT_TRUE(source_.fetches.empty());
  }
  // A file of another size there (a half-copied store): not shared.
  write(server_store_ / "tiny" / "w.bin", "short");
  EXPECT_FALSE(shared_with_server(source_.manifest_));
}

TEST_F(ModelSyncTest, AlwaysPullKeepsACopyEvenOnSharedStorage) {
  for (const auto& [path, bytes] : source_.content) write(server_store_ / "tiny" / path, bytes);
  source_.manifest_.store_id = "store_abc";
  options_.always_pull = true;
  ModelSync sync(options_, source_, clock_);
  const auto st = pull(sync);
  EXPECT_EQ(st.state, State::ready);
  EXPECT_FALSE(st.shared);
  EXPECT_EQ(st.local_path, local().string());
  EXPECT_EQ(source_.fetches.size(), 2u);
}

TEST_F(ModelSyncTest, OnePullPerModelForManyRequests) {
  ModelSync sync(options_, source_, clock_);
  for (int i = 0; i < 5; ++i) sync.request("mdl_1", source_.manifest_.path);
  ASSERT_TRUE(sync.wait_idle(20s));
  EXPECT_EQ(sync.status("mdl_1")->state, State::ready);
  EXPECT_EQ(source_.manifests.load(), 1);
  EXPECT_EQ(source_.fetches.size(), 2u);
}

TEST_F(ModelSyncTest, ASingleFileModelLandsUnderItsName) {
  source_.manifest_.files.clear();
  source_.content.clear();
  source_.manifest_.single_file = true;
  source_.manifest_.path = (server_store_ / "m.gguf").string();
  source_.add("m.gguf", pattern(5000, 7));
  ModelSync sync(options_, source_, clock_);
  const auto st = pull(sync);
  ASSERT_EQ(st.state, State::ready) << st.reason;
  EXPECT_EQ(st.local_path, (local() / "m.gguf").string());
  EXPECT_EQ(read(local() / "m.gguf"), pattern(5000, 7));
}

TEST(RewriteModelPath, ReplacesTheServersPathByTheNodesCopy) {
  const std::vector<std::string> argv = {"serve",
                                         "/srv/models/q",
                                         "--tokenizer",
                                         "/srv/models/q/tok",
                                         "--model=/srv/models/q",
                                         "/srv/models/q2",
                                         "--port",
                                         "{port}"};
  const auto out = rewrite_model_path(argv, "/srv/models/q", "/data/agent/models/mdl_1");
  EXPECT_EQ(out,
            (std::vector<std::string>{
                "serve", "/data/agent/models/mdl_1", "--tokenizer", "/data/agent/models/mdl_1/tok",
                "--model=/data/agent/models/mdl_1", "/srv/models/q2", "--port", "{port}"}));
  EXPECT_EQ(rewrite_model_path(argv, "/srv/models/q", ""), argv);  // shared: unchanged
}

TEST(FormatBytes, BinaryUnits) {
  EXPECT_EQ(format_bytes(512), "512 B");
  EXPECT_EQ(format_bytes(1536), "1.5 KiB");
  EXPECT_EQ(format_bytes(std::int64_t{3} << 30), "3.0 GiB");
}

}  // namespace
}  // namespace openstation::agent

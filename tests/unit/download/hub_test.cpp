#include "download/hub.hpp"
#include "download/fetch.hpp"
#include "support/fake_hub.hpp"
#include "support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace openstation::download {
namespace {

namespace fs = std::filesystem;
using testing_support::FakeHub;
using testing_support::FakeHubFault;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class HubTest : public ::testing::TestWithParam<HubKind> {
 protected:
  void SetUp() override {
    dir_ = testing_support::unique_temp_path("hub");
    fs::remove_all(dir_);
    hub_ = std::make_unique<FakeHub>(dir_ / "hub");
    hub_->add_file("org/tiny", "config.json", R"({"model_type": "llama"})");
    hub_->add_random_file("org/tiny", "model.safetensors", 3 * 1024 * 1024 + 17, 7);
    hub_->add_random_file("org/tiny", "sub/dir/extra.bin", 5000, 9);
    target_ = FileTarget{dir_ / "staging", dir_ / "dest"};
  }
  void TearDown() override {
    hub_.reset();
    fs::remove_all(dir_);
  }
  std::unique_ptr<HubClient> client(std::string token = {}) {
    HubOptions o;
    o.endpoint = hub_->url();
    o.token = std::move(token);
    o.low_speed_time = std::chrono::seconds(20);
    return make_hub_client(GetParam(), o);
  }
  HubFile listed(const std::string& path) {
    auto files = client()->list_files("org/tiny", default_revision(GetParam()));
    EXPECT_TRUE(files) << files.error().message;
    for (const auto& f : *files) {
      if (f.path == path) return f;
    }
    ADD_FAILURE() << "not listed: " << path;
    return {};
  }
  core::Result<void> fetch(
      const HubFile& f, std::int64_t* counted = nullptr,
      std::function<bool()> keep_going = [] { return true; }) {
    auto c = client();
    return fetch_file(
        *c, "org/tiny", default_revision(GetParam()), f, target_,
        [&](std::int64_t n) {
          if (counted != nullptr) *counted += n;
        },
        keep_going);
  }

  /// fetch_file with parallel range requests for anything of 1 MiB and up.
  core::Result<void> fetch_segmented(
      const HubFile& f, std::int64_t* counted = nullptr,
      std::function<bool()> keep_going = [] { return true; }, int segments = 4) {
    auto c = client();
    FetchOptions o;
    o.segment_threshold = 1 << 20;
    o.segments = segments;
    o.segment_probe = std::chrono::milliseconds(0);  // segments from the start
    return fetch_file(
        *c, "org/tiny", default_revision(GetParam()), f, target_,
        [&](std::int64_t n) {
          if (counted != nullptr) *counted += n;
        },
        keep_going, o);
  }
  std::string original(const HubFile& f) { return slurp(dir_ / "hub/org/tiny" / f.path); }

  fs::path dir_;
  std::unique_ptr<FakeHub> hub_;
  FileTarget target_;
};

TEST_P(HubTest, ListsFilesWithSizesAndHashes) {
  auto files = client()->list_files("org/tiny", default_revision(GetParam()));
  ASSERT_TRUE(files) << files.error().message;
  ASSERT_EQ(files->size(), 3u);
  EXPECT_EQ((*files)[0].path, "config.json");
  EXPECT_EQ((*files)[1].path, "model.safetensors");
  EXPECT_EQ((*files)[1].size, 3 * 1024 * 1024 + 17);
  EXPECT_EQ((*files)[1].sha256, sha256_file(dir_ / "hub/org/tiny/model.safetensors").value());
  EXPECT_EQ((*files)[2].path, "sub/dir/extra.bin");
  // HuggingFace gives SHA-256 only for LFS files; ModelScope for every file.
  EXPECT_EQ((*files)[0].sha256.empty(), GetParam() == HubKind::huggingface);
}

TEST_P(HubTest, UnknownRepositoryIsNotFound) {
  auto files = client()->list_files("org/none", default_revision(GetParam()));
  ASSERT_FALSE(files);
  EXPECT_EQ(files.error().code, "hub.not_found");
}

TEST_P(HubTest, GatedRepositoryNeedsTheToken) {
  hub_->require_token("s3cret");
  auto refused = client()->list_files("org/tiny", default_revision(GetParam()));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, "hub.unauthorized");
  auto ok = client("s3cret")->list_files("org/tiny", default_revision(GetParam()));
  EXPECT_TRUE(ok);
}

TEST_P(HubTest, FetchesVerifiesAndRenamesAtomically) {
  const auto f = listed("model.safetensors");
  std::int64_t counted = 0;
  auto r = fetch(f, &counted);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(counted, f.size);
  EXPECT_EQ(slurp(target_.dest_dir / f.path), slurp(dir_ / "hub/org/tiny/model.safetensors"));
  EXPECT_FALSE(fs::exists(part_path(target_, f)));
  const auto nested = listed("sub/dir/extra.bin");
  ASSERT_TRUE(fetch(nested));
  EXPECT_TRUE(fs::exists(target_.dest_dir / "sub/dir/extra.bin"));
}

TEST_P(HubTest, ResumesAfterACutFromTheBytesOnDisk) {
  const auto f = listed("model.safetensors");
  FakeHubFault cut;
  cut.cut_after = 1024 * 1024 + 5;
  hub_->set_fault(f.path, cut);
  auto first = fetch(f);
  ASSERT_FALSE(first);
  EXPECT_EQ(first.error().code, "hub.unavailable") << first.error().message;
  EXPECT_FALSE(fs::exists(target_.dest_dir / f.path));  // never visible half-written
  EXPECT_EQ(bytes_on_disk(target_, f), 1024 * 1024 + 5);
  std::int64_t counted = 0;
  auto second = fetch(f, &counted);
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_EQ(counted, f.size - (1024 * 1024 + 5));  // only the rest crossed the network
  EXPECT_EQ(hub_->offsets(f.path), (std::vector<std::int64_t>{0, 1024 * 1024 + 5}));
  EXPECT_EQ(slurp(target_.dest_dir / f.path), slurp(dir_ / "hub/org/tiny/model.safetensors"));
}

TEST_P(HubTest, WrongBytesFailTheHashCheckAndAreDiscarded) {
  const auto f = listed("model.safetensors");
  FakeHubFault wrong;
  wrong.wrong_bytes = true;
  hub_->set_fault(f.path, wrong);
  auto r = fetch(f);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "download.hash_mismatch");
  EXPECT_NE(r.error().message.find(f.sha256), std::string::npos);
  EXPECT_FALSE(fs::exists(target_.dest_dir / f.path));
  EXPECT_FALSE(fs::exists(part_path(target_, f)));
  hub_->clear_faults();
  EXPECT_TRUE(fetch(f));
}

TEST_P(HubTest, MissingFileAndRefusedFileAreTypedErrors) {
  const auto f = listed("model.safetensors");
  FakeHubFault gone;
  gone.status = 404;
  hub_->set_fault(f.path, gone);
  auto r = fetch(f);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "hub.not_found");
  FakeHubFault refused;
  refused.status = 401;
  hub_->set_fault(f.path, refused);
  r = fetch(f);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "hub.unauthorized");
}

TEST_P(HubTest, StoppingKeepsThePartForLater) {
  const auto f = listed("model.safetensors");
  std::int64_t counted = 0;
  auto r = fetch(f, &counted, [&] { return counted < 1024 * 1024; });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "hub.aborted");
  EXPECT_GE(bytes_on_disk(target_, f), 1024 * 1024);
  EXPECT_LT(bytes_on_disk(target_, f), f.size);
  ASSERT_TRUE(fetch(f));
  EXPECT_EQ(sha256_file(target_.dest_dir / f.path).value(), f.sha256);
}

TEST_P(HubTest, SlowTrickleStillCompletes) {
  const auto f = listed("sub/dir/extra.bin");
  FakeHubFault slow;
  slow.trickle_delay = std::chrono::milliseconds(20);
  hub_->set_fault(f.path, slow);
  ASSERT_TRUE(fetch(f));
  EXPECT_EQ(fs::file_size(target_.dest_dir / f.path), 5000u);
}

TEST_P(HubTest, SegmentedFetchUsesParallelRangesAndVerifies) {
  const auto f = listed("model.safetensors");
  std::int64_t counted = 0;
  auto r = fetch_segmented(f, &counted);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(counted, f.size);
  EXPECT_EQ(slurp(target_.dest_dir / f.path), original(f));
  EXPECT_FALSE(fs::exists(part_path(target_, f)));
  EXPECT_FALSE(fs::exists(segments_path(target_, f)));
  auto offsets = hub_->offsets(f.path);
  std::sort(offsets.begin(), offsets.end());
  EXPECT_EQ(offsets, (std::vector<std::int64_t>{0, f.size / 4, f.size / 2, f.size * 3 / 4}));
  // Small files stay one stream.
  const auto small = listed("sub/dir/extra.bin");
  ASSERT_TRUE(fetch_segmented(small));
  EXPECT_EQ(hub_->offsets(small.path), (std::vector<std::int64_t>{0}));
}

TEST_P(HubTest, SegmentedCutMidSegmentResumesEverySegmentFromItsBytes) {
  const auto f = listed("model.safetensors");
  FakeHubFault cut;
  cut.cut_after = 300 * 1000 + 3;  // inside each ~768 KiB segment
  cut.times = -1;
  hub_->set_fault(f.path, cut);
  std::int64_t first_bytes = 0;
  auto first = fetch_segmented(f, &first_bytes);
  ASSERT_FALSE(first);
  EXPECT_EQ(first.error().code, "hub.unavailable") << first.error().message;
  EXPECT_FALSE(fs::exists(target_.dest_dir / f.path));  // never visible half-written
  EXPECT_TRUE(fs::exists(segments_path(target_, f)));
  EXPECT_GT(first_bytes, 0);
  EXPECT_EQ(bytes_on_disk(target_, f), first_bytes);  // the sidecar claims what was written
  hub_->clear_faults();
  const auto before = hub_->offsets(f.path).size();
  std::int64_t second_bytes = 0;
  auto second = fetch_segmented(f, &second_bytes);
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_EQ(first_bytes + second_bytes, f.size);  // no byte crossed the network twice
  // At least the segment that was cut goes on from its bytes, not from its start.
  const auto offsets = hub_->offsets(f.path);
  bool resumed_mid_segment = false;
  for (auto i = before; i < offsets.size(); ++i) {
    if (offsets[i] % (f.size / 4) != 0) resumed_mid_segment = true;
  }
  EXPECT_TRUE(resumed_mid_segment);
  EXPECT_EQ(slurp(target_.dest_dir / f.path), original(f));
  EXPECT_FALSE(fs::exists(segments_path(target_, f)));
}

TEST_P(HubTest, SegmentedWrongBytesFailTheHashCheckWithTheReason) {
  const auto f = listed("model.safetensors");
  FakeHubFault wrong;
  wrong.wrong_bytes = true;
  hub_->set_fault(f.path, wrong);
  auto r = fetch_segmented(f);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "download.hash_mismatch");
  EXPECT_NE(r.error().message.find(f.sha256), std::string::npos);
  EXPECT_FALSE(fs::exists(target_.dest_dir / f.path));
  EXPECT_FALSE(fs::exists(part_path(target_, f)));
  EXPECT_FALSE(fs::exists(segments_path(target_, f)));
  hub_->clear_faults();
  ASSERT_TRUE(fetch_segmented(f));
  EXPECT_EQ(sha256_file(target_.dest_dir / f.path).value(), f.sha256);
}

TEST_P(HubTest, SegmentedStopThenRestartResumesWithANewClient) {
  const auto f = listed("model.safetensors");
  std::int64_t first_bytes = 0;
  auto r = fetch_segmented(f, &first_bytes, [&] { return first_bytes < 1024 * 1024; });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "hub.aborted");
  EXPECT_EQ(bytes_on_disk(target_, f), first_bytes);
  EXPECT_LT(first_bytes, f.size);
  // A restart: a new client (and a new process would read the same sidecar), other options.
  std::int64_t second_bytes = 0;
  auto again = fetch_segmented(
      f, &second_bytes, [] { return true; }, 8);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(first_bytes + second_bytes, f.size);  // the layout on disk wins over the options
  EXPECT_EQ(slurp(target_.dest_dir / f.path), original(f));
}

TEST_P(HubTest, ASidecarInDoubtStartsTheFileOver) {
  const auto f = listed("model.safetensors");
  std::int64_t first_bytes = 0;
  ASSERT_FALSE(fetch_segmented(f, &first_bytes, [&] { return first_bytes < 1024 * 1024; }));
  { std::ofstream(segments_path(target_, f), std::ios::trunc) << "openstation-segments 1\nsize 3"; }
  EXPECT_EQ(bytes_on_disk(target_, f), 0);
  std::int64_t counted = 0;
  ASSERT_TRUE(fetch_segmented(f, &counted));
  EXPECT_EQ(counted, f.size);
  EXPECT_EQ(slurp(target_.dest_dir / f.path), original(f));
}

TEST_P(HubTest, AOneStreamPrefixSeedsTheSegments) {
  const auto f = listed("model.safetensors");
  std::int64_t first_bytes = 0;
  ASSERT_FALSE(fetch(f, &first_bytes, [&] { return first_bytes < 1024 * 1024; }));
  const auto have = bytes_on_disk(target_, f);
  ASSERT_GT(have, 0);
  std::int64_t counted = 0;
  auto r = fetch_segmented(f, &counted);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(counted, f.size - have);
  EXPECT_EQ(slurp(target_.dest_dir / f.path), original(f));
}

TEST_P(HubTest, ALargeStreamCutAtAnUnalignedByteResumesExactly) {
  // Large enough for the writer thread (straight to the device, aligned buffers): the .part must
  // still hold exactly the bytes that arrived, and the resume start at an unaligned offset.
  hub_->add_random_file("org/tiny", "big.bin", (40 << 20) + 123, 11);
  const auto f = listed("big.bin");
  FakeHubFault cut;
  cut.cut_after = (5 << 20) + 77;
  hub_->set_fault(f.path, cut);
  std::int64_t first_bytes = 0;
  auto first = fetch(f, &first_bytes);
  ASSERT_FALSE(first);
  EXPECT_EQ(first.error().code, "hub.unavailable") << first.error().message;
  EXPECT_EQ(first_bytes, (5 << 20) + 77);
  EXPECT_EQ(bytes_on_disk(target_, f), (5 << 20) + 77);
  std::int64_t second_bytes = 0;
  auto second = fetch(f, &second_bytes);
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_EQ(second_bytes, f.size - ((5 << 20) + 77));
  EXPECT_EQ(hub_->offsets(f.path), (std::vector<std::int64_t>{0, (5 << 20) + 77}));
  EXPECT_EQ(sha256_file(target_.dest_dir / f.path).value(), f.sha256);
  EXPECT_EQ(slurp(target_.dest_dir / f.path), original(f));
}

TEST_P(HubTest, ALargeStreamStoppedKeepsEveryByteItCounted) {
  hub_->add_random_file("org/tiny", "big.bin", (24 << 20) + 5, 12);
  const auto f = listed("big.bin");
  std::int64_t first_bytes = 0;
  auto r = fetch(f, &first_bytes, [&] { return first_bytes < (9 << 20) + 3; });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "hub.aborted");
  EXPECT_EQ(bytes_on_disk(target_, f), first_bytes);
  std::int64_t second_bytes = 0;
  ASSERT_TRUE(fetch(f, &second_bytes));
  EXPECT_EQ(first_bytes + second_bytes, f.size);
  EXPECT_EQ(sha256_file(target_.dest_dir / f.path).value(), f.sha256);
}

TEST_P(HubTest, WithoutSyncEveryPathGivesTheSameVerifiedFilesAndFlushMakesThemDurable) {
  // sync = false (how the download queue fetches): the stream through the page cache, the
  // O_DIRECT writer and the segments must all still verify and rename; flush_files then syncs.
  hub_->add_random_file("org/tiny", "big.bin", (20 << 20) + 9, 13);
  std::vector<HubFile> files = {listed("model.safetensors"), listed("sub/dir/extra.bin"),
                                listed("big.bin")};
  for (const int segments : {1, 4}) {
    for (const bool direct : {false, true}) {
      fs::remove_all(target_.dest_dir);
      FetchOptions o;
      o.sync = false;
      o.direct_io = direct;
      o.segments = segments;
      o.segment_threshold = 1 << 20;
      for (const auto& f : files) {
        auto c = client();
        auto r = fetch_file(
            *c, "org/tiny", default_revision(GetParam()), f, target_, [](std::int64_t) {},
            [] { return true; }, o);
        ASSERT_TRUE(r) << r.error().message;
        EXPECT_EQ(slurp(target_.dest_dir / f.path), original(f)) << f.path;
        EXPECT_FALSE(fs::exists(part_path(target_, f)));
        EXPECT_FALSE(fs::exists(segments_path(target_, f)));
      }
      auto flushed = flush_files(target_.dest_dir, files);
      EXPECT_TRUE(flushed) << flushed.error().message;
    }
  }
  fs::remove(target_.dest_dir / "big.bin");
  auto missing = flush_files(target_.dest_dir, files);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, "download.io");
  EXPECT_NE(missing.error().message.find("big.bin"), std::string::npos) << missing.error().message;
}

TEST_P(HubTest, ASlowStreamTurnsIntoSegmentsAfterTheProbeAndAFastOneDoesNot) {
  const auto f = listed("model.safetensors");  // 3 MiB
  FetchOptions o;
  o.sync = false;
  o.segment_threshold = 1 << 20;
  o.segments = 4;
  o.segment_probe = std::chrono::milliseconds(150);
  o.segment_below_rate = 64ll << 20;
  const auto run = [&] {
    auto c = client();
    std::int64_t counted = 0;
    auto r = fetch_file(
        *c, "org/tiny", default_revision(GetParam()), f, target_,
        [&](std::int64_t n) { counted += n; }, [] { return true; }, o);
    EXPECT_TRUE(r) << r.error().message;
    EXPECT_EQ(counted, f.size);
    EXPECT_EQ(slurp(target_.dest_dir / f.path), original(f));
  };
  // A hub pacing the connection (about 3.5 MB/s): the stream stops after the probe and four
  // ranges fetch the rest, the first of them going on from the stream's bytes.
  FakeHubFault paced;
  paced.trickle_delay = std::chrono::milliseconds(1);
  hub_->set_fault(f.path, paced);
  run();
  const auto slow = hub_->offsets(f.path);
  ASSERT_GE(slow.size(), 2u);
  EXPECT_EQ(slow.front(), 0);
  EXPECT_GT(slow.size(), 2u) << "the rest in several ranges";
  EXPECT_FALSE(fs::exists(segments_path(target_, f)));

  // The same file at loopback speed stays one stream.
  hub_->clear_faults();
  fs::remove_all(target_.dest_dir);
  const auto before = hub_->offsets(f.path).size();
  o.segment_probe = std::chrono::milliseconds(10000);  // ends before the probe does
  run();
  EXPECT_EQ(hub_->offsets(f.path).size(), before + 1);
}

TEST_P(HubTest, VerifyInPlaceKeepsGoodFilesAndDiscardsDamagedOnes) {
  const auto f = listed("model.safetensors");
  ASSERT_TRUE(fetch(f));
  const auto path = target_.dest_dir / f.path;
  EXPECT_TRUE(verify_in_place(target_, f));
  EXPECT_TRUE(fs::exists(path));

  {  // a crash that lost a page: same size, other bytes
    std::fstream io(path, std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(1 << 20);
    io.write("\0\0\0\0", 4);
  }
  auto damaged = verify_in_place(target_, f);
  ASSERT_FALSE(damaged);
  EXPECT_EQ(damaged.error().code, "download.hash_mismatch") << damaged.error().message;
  EXPECT_FALSE(fs::exists(path));
  EXPECT_EQ(bytes_on_disk(target_, f), 0);

  ASSERT_TRUE(fetch(f));  // fetched again in full
  fs::resize_file(path, 1000);
  auto short_file = verify_in_place(target_, f);
  ASSERT_FALSE(short_file);
  EXPECT_EQ(short_file.error().code, "download.size_mismatch") << short_file.error().message;
  EXPECT_FALSE(fs::exists(path));
  EXPECT_TRUE(verify_in_place(target_, f)) << "a missing file is nothing to check";
}

/// A hub that only implements fetch(): fetch_range's default reads it and stops at the end.
class FetchOnly final : public HubClient {
 public:
  explicit FetchOnly(HubClient& inner) : inner_(inner) {}
  HubKind kind() const override { return inner_.kind(); }
  core::Result<std::vector<HubFile>> list_files(std::string_view repo,
                                                std::string_view revision) override {
    return inner_.list_files(repo, revision);
  }
  core::Result<void> fetch(std::string_view repo, std::string_view revision, std::string_view path,
                           std::int64_t offset, const ChunkSink& sink,
                           const std::function<bool()>& keep_going) override {
    return inner_.fetch(repo, revision, path, offset, sink, keep_going);
  }

 private:
  HubClient& inner_;
};

TEST_P(HubTest, FetchRangeReadsExactlyTheRange) {
  const auto f = listed("model.safetensors");
  auto c = client();
  FetchOnly plain(*c);
  for (HubClient* h : {static_cast<HubClient*>(c.get()), static_cast<HubClient*>(&plain)}) {
    std::string got;
    auto r = h->fetch_range(
        "org/tiny", default_revision(GetParam()), f.path, 1000, 1000 + 700 * 1024,
        [&](std::string_view b) {
          got.append(b);
          return true;
        },
        [] { return true; });
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(got, original(f).substr(1000, 700 * 1024));
  }
  EXPECT_TRUE(c->concurrent_fetches());
  EXPECT_FALSE(plain.concurrent_fetches());
}

INSTANTIATE_TEST_SUITE_P(Hubs, HubTest,
                         ::testing::Values(HubKind::modelscope, HubKind::huggingface),
                         [](const ::testing::TestParamInfo<HubKind>& p) {
                           return std::string(to_string(p.param));
                         });

TEST(HubParse, RejectsListingsThatAreNotTheHubs) {
  EXPECT_EQ(parse_hf_tree("{}").error().code, "hub.bad_response");
  EXPECT_EQ(parse_hf_tree(R"([{"type":"file"}])").error().code, "hub.bad_response");
  EXPECT_EQ(parse_ms_files(R"({"Code":10010205001,"Message":"not found"})").error().code,
            "hub.bad_response");
  auto dirs =
      parse_hf_tree(R"([{"type":"directory","path":"a"},{"type":"file","path":"a/b","size":3}])");
  ASSERT_TRUE(dirs);
  ASSERT_EQ(dirs->size(), 1u);
  EXPECT_EQ((*dirs)[0].path, "a/b");
}

TEST(HubParse, PathsThatEscapeTheModelDirectoryAreRefused) {
  for (const char* p : {"../x", "/etc/passwd", "a/../../b", "a//b", "", "a\\b", "./a"}) {
    EXPECT_FALSE(check_file_path(p)) << p;
  }
  EXPECT_TRUE(check_file_path("a/b.safetensors"));
  EXPECT_FALSE(check_repo("no-slash"));
  EXPECT_FALSE(check_repo("../x"));
  EXPECT_TRUE(check_repo("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"));
}

}  // namespace
}  // namespace openstation::download

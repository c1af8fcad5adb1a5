#include "download/hub.hpp"
#include "download/fetch.hpp"
#include "support/fake_hub.hpp"
#include "support/temp_dir.hpp"

#include <gtest/gtest.h>

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

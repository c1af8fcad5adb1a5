// bench/download: the hub client's throughput (libcurl ranges, SHA-256 streamed, .part + fsync +
// rename, as the download queue runs it) against the curl command line fetching the same file
// from the same fake hub in the same run. Prints MB/s for each and the ratio (target ≥ 0.95).
//
//     os-download-bench [--size-mb 512] [--runs 3] [--dir /tmp/os-download-bench]
//
// A third peer, curl followed by an fsync of its file, shows what the durability costs.

#include "download/fetch.hpp"
#include "download/hub.hpp"
#include "support/fake_hub.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using namespace openstation;

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  std::int64_t size_mb = 512;
  int runs = 3;
  fs::path dir = fs::temp_directory_path() / "os-download-bench";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--size-mb")
      size_mb = std::atoll(argv[i + 1]);
    else if (a == "--runs")
      runs = std::atoi(argv[i + 1]);
    else if (a == "--dir")
      dir = argv[i + 1];
    else {
      std::cerr << "unknown option " << a << "\n";
      return 2;
    }
  }
  fs::remove_all(dir);
  testing_support::FakeHub hub(dir / "hub");
  const std::int64_t size = size_mb * 1024 * 1024;
  hub.add_random_file("org/bench", "model.safetensors", size, 42);
  download::HubOptions options;
  options.endpoint = hub.url();
  auto client = download::make_hub_client(download::HubKind::huggingface, options);
  auto files = client->list_files("org/bench", "main");
  if (!files || files->size() != 1) {
    std::cerr << "listing failed\n";
    return 1;
  }
  const auto file = files->front();
  const std::string url = hub.url() + "/org/bench/resolve/main/model.safetensors";

  std::vector<double> ours;
  std::vector<double> curl;
  std::vector<double> curl_sync;
  for (int r = 0; r < runs; ++r) {
    // curl: the same bytes to a file on the same disk.
    fs::remove(dir / "curl.bin");
    auto t0 = std::chrono::steady_clock::now();
    const std::string cmd = "curl -sSf -o '" + (dir / "curl.bin").string() + "' '" + url + "'";
    if (std::system(cmd.c_str()) != 0) {
      std::cerr << "curl failed: " << cmd << "\n";
      return 1;
    }
    curl.push_back(static_cast<double>(size) / seconds_since(t0) / 1e6);

    // curl, then fsync of its file (coreutils sync FILE): the same durability as ours, which
    // syncs before the rename.
    fs::remove(dir / "curl.bin");
    t0 = std::chrono::steady_clock::now();
    const std::string synced = cmd + " && sync '" + (dir / "curl.bin").string() + "'";
    if (std::system(synced.c_str()) != 0) {
      std::cerr << "curl failed: " << synced << "\n";
      return 1;
    }
    curl_sync.push_back(static_cast<double>(size) / seconds_since(t0) / 1e6);

    // ours: fetch_file as the download queue runs it.
    fs::remove_all(dir / "staging");
    fs::remove_all(dir / "dest");
    const download::FileTarget target{dir / "staging", dir / "dest"};
    t0 = std::chrono::steady_clock::now();
    auto ok = download::fetch_file(
        *client, "org/bench", "main", file, target, [](std::int64_t) {}, [] { return true; });
    if (!ok) {
      std::cerr << "fetch failed: " << ok.error().message << "\n";
      return 1;
    }
    ours.push_back(static_cast<double>(size) / seconds_since(t0) / 1e6);
  }
  const double o = median(ours);
  const double c = median(curl);
  const double cs = median(curl_sync);
  std::printf("file: %lld MiB from the fake hub on loopback, %d runs (medians)\n",
              static_cast<long long>(size_mb), runs);
  std::printf("curl (command line, no hash, no fsync): %8.1f MB/s\n", c);
  std::printf("curl, then fsync of the file:           %8.1f MB/s\n", cs);
  std::printf("openstation fetch_file (SHA-256, fsync): %8.1f MB/s\n", o);
  std::printf("ratio against curl: %.3f (target >= 0.95) %s\n", o / c,
              o / c >= 0.95 ? "PASS" : "BELOW TARGET");
  std::printf("ratio against curl + fsync: %.3f\n", o / cs);
  fs::remove_all(dir);
  return 0;
}

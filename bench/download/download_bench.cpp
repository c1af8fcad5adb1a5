// bench/download: the hub client's throughput (libcurl ranges, SHA-256, .part + rename, as the
// download queue runs it: FetchOptions::sync = false, the model is ready when its files are
// verified, flush_files puts them on the disk after) against the curl command line fetching the
// same files from the same fake hub in the same run. Two cases: one large file (one stream and
// parallel range requests, one row per segment count) and many small files (one curl invocation
// fetching them all over one connection, against fetch_file per file as the queue runs them), plus
// one file from a hub that paces each connection (where parallel ranges are meant to pay). Each
// round runs every peer once, in an order shuffled from round to round; the report gives each
// peer's median MB/s and the ratios against plain curl (target >= 0.95) and against curl followed
// by an fsync of its files; rows marked "then flush_files" time ours until the files are on the
// disk too (the same durability as curl + fsync), "synced as it goes" is FetchOptions::sync = true
// (the agent's node sync); and the CPU seconds per GB each peer used, the fake hub's included (it
// shares the two cores).
//
//     os-download-bench [--size-mb 512] [--rounds 5] [--segments 1,2,4,8]
//                       [--small-files 200] [--small-kb 256] [--dir /tmp/os-download-bench]
//                       [--limited-mb 16] [--limited-rounds 3]
//                       [--only NAME]   (only the peers whose name contains NAME: profiling)

#include "download/fetch.hpp"
#include "download/hub.hpp"
#include "support/fake_hub.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;
using namespace openstation;

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const auto n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::vector<int> parse_list(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(std::atoi(item.c_str()));
  return out;
}

double load_average() {
  std::ifstream in("/proc/loadavg");
  double l = 0;
  in >> l;
  return l;
}

/// CPU seconds (user + system) used so far by this process (the fake hub, and fetch_file) and
/// by its waited-for children (the curl command lines).
double cpu_seconds() {
  double total = 0;
  for (const int who : {RUSAGE_SELF, RUSAGE_CHILDREN}) {
    rusage u{};
    ::getrusage(who, &u);
    total += static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
             static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
  }
  return total;
}

/// One peer of a case: a name and a run that returns the seconds it took (negative: failed).
struct Peer {
  std::string name;
  std::function<double()> run;
  std::vector<double> mbps{};
  std::vector<double> cpu_per_gb{};  ///< CPU seconds per GB moved, hub included
};

/// Before each timed run (untimed): `clear` removes the previous run's files, then everything
/// dirty goes to the disk and the machine settles for a moment, so no run pays for another's
/// writeback or freed memory.
void settle(const std::function<void()>& clear) {
  clear();
  ::sync();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
}

/// Runs `peers` for `rounds` rounds, each round in its own shuffled order (a fixed seed: the same
/// orders every run; no peer always follows the same one), and prints the table.
void run_case(const std::string& title, std::int64_t bytes, int rounds, std::vector<Peer>& peers,
              const std::string& only, const std::function<void()>& clear) {
  if (!only.empty()) {  // profiling one peer: no ratios
    std::erase_if(peers, [&](const Peer& p) { return p.name.find(only) == std::string::npos; });
    for (int r = 0; r < rounds; ++r) {
      for (auto& p : peers) {
        settle(clear);
        const double s = p.run();
        std::printf("%s: %s %.0f MB/s\n", title.c_str(), p.name.c_str(),
                    static_cast<double>(bytes) / s / 1e6);
      }
    }
    return;
  }
  std::mt19937 shuffler(42);
  std::vector<std::size_t> order(peers.size());
  for (std::size_t k = 0; k < order.size(); ++k) order[k] = k;
  for (int r = 0; r < rounds; ++r) {
    std::shuffle(order.begin(), order.end(), shuffler);
    for (const std::size_t k : order) {
      auto& p = peers[k];
      settle(clear);
      const double cpu0 = cpu_seconds();
      const double s = p.run();
      if (s <= 0) {
        std::cerr << p.name << " failed\n";
        std::exit(1);
      }
      p.mbps.push_back(static_cast<double>(bytes) / s / 1e6);
      p.cpu_per_gb.push_back((cpu_seconds() - cpu0) / (static_cast<double>(bytes) / 1e9));
    }
    std::cerr << title << ": round " << r + 1 << "/" << rounds << " done (load " << load_average()
              << ")\n";
  }
  const double curl = median(peers[0].mbps);
  const double curl_sync = median(peers[1].mbps);
  std::printf("\n%s, %d rounds (median MB/s; min-max)\n\n", title.c_str(), rounds);
  std::printf(
      "| peer | MB/s | min-max | vs curl | vs curl + fsync | CPU s/GB |\n"
      "|---|---:|---:|---:|---:|---:|\n");
  for (const auto& p : peers) {
    const double m = median(p.mbps);
    const auto [lo, hi] = std::minmax_element(p.mbps.begin(), p.mbps.end());
    std::printf("| %s | %.1f | %.1f-%.1f | %.3f%s | %.3f | %.2f |\n", p.name.c_str(), m, *lo, *hi,
                m / curl,
                p.name.rfind("curl", 0) == 0 ? "" : (m / curl >= 0.95 ? " PASS" : " below"),
                m / curl_sync, median(p.cpu_per_gb));
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::int64_t size_mb = 512;
  int rounds = 5;
  std::vector<int> segments = {1, 2, 4, 8};
  int small_files = 200;
  std::int64_t small_kb = 256;
  fs::path dir = fs::temp_directory_path() / "os-download-bench";
  std::int64_t limited_mb = 16;  // 0: skip the paced-hub case
  int limited_rounds = 3;
  std::string only;  // run only the peers whose name contains this (for profiling)
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--size-mb")
      size_mb = std::atoll(argv[i + 1]);
    else if (a == "--rounds" || a == "--runs")
      rounds = std::atoi(argv[i + 1]);
    else if (a == "--segments")
      segments = parse_list(argv[i + 1]);
    else if (a == "--small-files")
      small_files = std::atoi(argv[i + 1]);
    else if (a == "--small-kb")
      small_kb = std::atoll(argv[i + 1]);
    else if (a == "--dir")
      dir = argv[i + 1];
    else if (a == "--limited-mb")
      limited_mb = std::atoll(argv[i + 1]);
    else if (a == "--limited-rounds")
      limited_rounds = std::atoi(argv[i + 1]);
    else if (a == "--only")
      only = argv[i + 1];
    else {
      std::cerr << "unknown option " << a << "\n";
      return 2;
    }
  }
  fs::remove_all(dir);
  testing_support::FakeHub hub(dir / "hub");
  const std::int64_t size = size_mb * 1024 * 1024;
  if (size > 0) hub.add_random_file("org/bench", "model.safetensors", size, 42);
  for (int i = 0; i < small_files; ++i) {
    hub.add_random_file("org/small", "f" + std::to_string(i) + ".bin", small_kb * 1024,
                        static_cast<std::uint32_t>(i + 1));
  }
  download::HubOptions options;
  options.endpoint = hub.url();
  auto client = download::make_hub_client(download::HubKind::huggingface, options);
  const fs::path out = dir / "out";

  std::printf(
      "os-download-bench: fake hub on loopback (in this process, 2 I/O threads), "
      "%u CPUs, load average at start %.2f\n",
      std::thread::hardware_concurrency(), load_average());

  const auto clear = [&] { fs::remove_all(out); };
  // curl with `args`, then (when `sync`) coreutils sync of the files it wrote.
  const auto curl_peer = [&](const std::string& name, std::string args,
                             std::vector<fs::path> written, bool sync) {
    return Peer{name, [=] {
                  fs::remove_all(out);
                  fs::create_directories(out);
                  std::string cmd = "curl -sSf " + args;
                  if (sync) {
                    cmd += " && sync";
                    for (const auto& w : written) cmd += " '" + w.string() + "'";
                  }
                  const auto t0 = std::chrono::steady_clock::now();
                  if (std::system(cmd.c_str()) != 0) return -1.0;
                  return seconds_since(t0);
                }};
  };
  // fetch_file for each of `files` in turn, as the download queue runs them (sync = false unless
  // `o` says otherwise); with `flush`, then flush_files as the queue does once the model is ready.
  const auto ours = [&](const std::string& name, std::string repo,
                        std::vector<download::HubFile> files, download::FetchOptions o,
                        bool flush = false) {
    return Peer{name, [&client, &out, repo, files, o, flush] {
                  fs::remove_all(out);
                  const download::FileTarget target{out / "staging", out / "dest"};
                  const auto t0 = std::chrono::steady_clock::now();
                  for (const auto& f : files) {
                    auto ok = download::fetch_file(
                        *client, repo, "main", f, target, [](std::int64_t) {}, [] { return true; },
                        o);
                    if (!ok) {
                      std::cerr << "fetch failed: " << ok.error().message << "\n";
                      return -1.0;
                    }
                  }
                  if (flush) {
                    if (auto f = download::flush_files(target.dest_dir, files); !f) {
                      std::cerr << "flush failed: " << f.error().message << "\n";
                      return -1.0;
                    }
                  }
                  return seconds_since(t0);
                }};
  };

  // Our rows of a one-file case: as the queue runs it (the default options: one stream, turned
  // into segments if it proves slow; and `durable`: until flushed too), then fixed variants.
  const auto add_ours = [&](std::vector<Peer>& peers, const std::string& repo,
                            const std::vector<download::HubFile>& files, bool durable) {
    download::FetchOptions queue;  // the download queue's options
    queue.sync = false;
    queue.segment_threshold = 1;
    peers.push_back(ours("fetch_file as the queue runs it", repo, files, queue));
    if (durable) {
      peers.push_back(
          ours("fetch_file as the queue runs it, then flush_files", repo, files, queue, true));
    }
    for (const int k : segments) {
      auto o = queue;
      o.segments = k;
      o.segment_probe = std::chrono::milliseconds(0);
      peers.push_back(ours(k <= 1 ? "fetch_file, one stream"
                                  : "fetch_file, " + std::to_string(k) + " segments from the start",
                           repo, files, o));
      if (k <= 1 && durable) {  // the agent's node sync: synced as it goes (O_DIRECT writer)
        o.sync = true;
        peers.push_back(ours("fetch_file, one stream, synced as it goes", repo, files, o));
      }
    }
  };

  if (size > 0) {
    auto files = client->list_files("org/bench", "main");
    if (!files || files->size() != 1) {
      std::cerr << "listing failed\n";
      return 1;
    }
    const std::string url = hub.url() + "/org/bench/resolve/main/model.safetensors";
    const fs::path dst = out / "curl.bin";
    const std::string args = "-o '" + dst.string() + "' '" + url + "'";
    std::vector<Peer> peers = {curl_peer("curl", args, {dst}, false),
                               curl_peer("curl + fsync", args, {dst}, true)};
    add_ours(peers, "org/bench", *files, true);
    run_case("one file of " + std::to_string(size_mb) + " MiB", size, rounds, peers, only, clear);
  }

  if (limited_mb > 0) {
    // A hub that paces each connection (4 KiB, then a 1 ms pause: at most ~4 MB/s per
    // connection, as CDNs and mirrors often cap one connection): where parallel ranges pay.
    hub.add_random_file("org/limited", "model.safetensors", limited_mb << 20, 43);
    testing_support::FakeHubFault paced;
    paced.trickle_delay = std::chrono::milliseconds(1);
    hub.set_fault("model.safetensors", paced);
    auto files = client->list_files("org/limited", "main");
    if (!files || files->size() != 1) {
      std::cerr << "listing failed\n";
      return 1;
    }
    const std::string url = hub.url() + "/org/limited/resolve/main/model.safetensors";
    const fs::path dst = out / "curl.bin";
    const std::string args = "-o '" + dst.string() + "' '" + url + "'";
    std::vector<Peer> peers = {curl_peer("curl", args, {dst}, false),
                               curl_peer("curl + fsync", args, {dst}, true)};
    add_ours(peers, "org/limited", *files, false);
    run_case("one file of " + std::to_string(limited_mb) + " MiB from a hub pacing each connection",
             limited_mb << 20, limited_rounds, peers, only, clear);
    hub.clear_faults();
  }

  if (small_files > 0) {
    auto files = client->list_files("org/small", "main");
    if (!files || files->size() != static_cast<std::size_t>(small_files)) {
      std::cerr << "listing failed\n";
      return 1;
    }
    // One curl invocation for all of them (it keeps the connection), URLs in a config file.
    const fs::path config = dir / "curl-small.conf";
    std::vector<fs::path> written;
    {
      std::ofstream c(config);
      for (const auto& f : *files) {
        written.push_back(out / f.path);
        c << "url = \"" << hub.url() << "/org/small/resolve/main/" << f.path << "\"\n"
          << "output = \"" << (out / f.path).string() << "\"\n";
      }
    }
    const std::string args = "-K '" + config.string() + "'";
    download::FetchOptions unsynced;
    unsynced.sync = false;
    std::vector<Peer> peers = {
        curl_peer("curl", args, written, false), curl_peer("curl + fsync", args, written, true),
        ours("fetch_file per file", "org/small", *files, unsynced),
        ours("fetch_file per file, then flush_files", "org/small", *files, unsynced, true)};
    run_case(std::to_string(small_files) + " files of " + std::to_string(small_kb) + " KiB",
             static_cast<std::int64_t>(small_files) * small_kb * 1024, rounds, peers, only, clear);
  }
  std::printf("\nload average at the end: %.2f\n", load_average());
  fs::remove_all(dir);
  return 0;
}

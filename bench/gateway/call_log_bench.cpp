// bench/gateway: what writing a batch of call logs costs the store, as the embedded gateway's
// CallLogWriter and the replicas' endpoint write it (server::append_call_logs: the calls and each
// used key's last_used_at, in one transaction), against appending the same calls alone in the same
// run. The calls of one batch are spread over --keys distinct API keys: a company's many users
// each calling with their own key make every batch touch many keys.
//
//     os-call-log-bench [--keys 1,100,1000] [--batch 4096] [--rounds 7] [--dir
//     /tmp/os-call-log-bench]
//
// Prints, per key count, the median milliseconds per batch of each way and their ratio.

#include "server/auth/api_key.hpp"
#include "server/gateway_feed.hpp"
#include "store/store.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace openstation;

struct Args {
  std::vector<int> keys{1, 100, 1000};
  int batch = 4096;
  int rounds = 7;
  std::filesystem::path dir = "/tmp/os-call-log-bench";
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "os-call-log-bench: %s\nusage: os-call-log-bench [--keys 1,100,1000] [--batch 4096] "
               "[--rounds 7] [--dir DIR]\n",
               why);
  std::exit(2);
}

int positive(std::string_view text, const char* what) {
  char* end = nullptr;
  const std::string s(text);
  const long v = std::strtol(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || v <= 0 || v > 1'000'000) {
    usage(
        (std::string(what) + " must be a whole number from 1 to 1000000, not '" + s + "'").c_str());
  }
  return static_cast<int>(v);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (i + 1 >= argc) usage(("missing a value after " + std::string(flag)).c_str());
    const std::string_view value = argv[++i];
    if (flag == "--keys") {
      a.keys.clear();
      std::size_t at = 0;
      while (at <= value.size()) {
        const auto comma = std::min(value.find(',', at), value.size());
        a.keys.push_back(positive(value.substr(at, comma - at), "--keys"));
        at = comma + 1;
      }
    } else if (flag == "--batch") {
      a.batch = positive(value, "--batch");
    } else if (flag == "--rounds") {
      a.rounds = positive(value, "--rounds");
    } else if (flag == "--dir") {
      a.dir = std::string(value);
    } else {
      usage(("unknown option " + std::string(flag)).c_str());
    }
  }
  return a;
}

template <class T>
T must(core::Result<T> r, const char* what) {
  if (!r) {
    std::fprintf(stderr, "os-call-log-bench: %s: %s\n", what, r.error().message.c_str());
    std::exit(1);
  }
  return std::move(*r);
}

void check(const core::Result<void>& r, const char* what) {
  if (!r) {
    std::fprintf(stderr, "os-call-log-bench: %s: %s\n", what, r.error().message.c_str());
    std::exit(1);
  }
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse(argc, argv);
  std::printf("| keys per batch | calls and keys (ms per batch) | calls alone (ms) | ratio |\n");
  std::printf("|---|---|---|---|\n");
  for (const int nkeys : args.keys) {
    std::filesystem::remove_all(args.dir);
    std::filesystem::create_directories(args.dir);
    auto store = must(store::open_store((args.dir / "store.db").string()), "opening the store");
    store::User u;
    u.username = "bench";
    u.password_hash = "x";
    const auto user = must(store->users().create(u), "a user");
    std::vector<std::string> key_ids;
    for (int i = 0; i < nkeys; ++i) {
      const auto k = server::auth::generate_api_key();
      store::ApiKey a;
      a.user_id = user.id;
      a.name = "k" + std::to_string(i);
      a.prefix = k.prefix;
      a.secret_hash = k.hash;
      key_ids.push_back(must(store->api_keys().create(a), "a key").id);
    }
    auto t = std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now());
    auto batch = [&] {
      std::vector<store::CallLog> logs(static_cast<std::size_t>(args.batch));
      for (std::size_t i = 0; i < logs.size(); ++i) {
        t += std::chrono::milliseconds(1);  // every batch newer: each touch moves a key
        logs[i].time = t;
        logs[i].user_id = user.id;
        logs[i].key_id = key_ids[i % key_ids.size()];
        logs[i].service = "chat";
        logs[i].status = 200;
        logs[i].prompt_tokens = 12;
        logs[i].completion_tokens = 40;
      }
      return logs;
    };
    std::vector<double> with_keys;
    std::vector<double> alone;
    for (int r = 0; r < args.rounds; ++r) {  // alternating, so drift falls on both
      const auto a = batch();
      const auto t0 = std::chrono::steady_clock::now();
      check(server::append_call_logs(*store, a), "appending calls and keys");
      const auto t1 = std::chrono::steady_clock::now();
      const auto b = batch();
      const auto t2 = std::chrono::steady_clock::now();
      check(store->call_logs().append_all(b), "appending calls");
      const auto t3 = std::chrono::steady_clock::now();
      with_keys.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
      alone.push_back(std::chrono::duration<double, std::milli>(t3 - t2).count());
    }
    const double w = median(with_keys);
    const double a = median(alone);
    std::printf("| %d | %.2f | %.2f | %.2f |\n", nkeys, w, a, w / a);
  }
  std::filesystem::remove_all(args.dir);
  return 0;
}

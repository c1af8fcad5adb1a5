#pragma once
// A SQLite store in a scratch directory of its own (unique to the process and the running
// test), on the clock a test gives it; the directory goes when the TempStore does.

#include "core/clock.hpp"
#include "store/store.hpp"
#include "support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>

namespace openstation::testing_support {

class TempStore {
 public:
  /// Opens the store; a failure is reported as a test failure and leaves get() null.
  TempStore(const std::string& stem, const core::Clock& clock) : dir_(unique_temp_path(stem)) {
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    store::StoreOptions so;
    so.clock = &clock;
    auto s = store::open_store((dir_ / "store.db").string(), so);
    EXPECT_TRUE(s) << s.error().message;
    if (s) store_ = std::move(*s);
  }
  ~TempStore() {
    store_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  TempStore(const TempStore&) = delete;
  TempStore& operator=(const TempStore&) = delete;

  store::Store* get() const { return store_.get(); }
  store::Store& operator*() const { return *store_; }
  store::Store* operator->() const { return store_.get(); }

 private:
  std::filesystem::path dir_;
  std::unique_ptr<store::Store> store_;
};

}  // namespace openstation::testing_support

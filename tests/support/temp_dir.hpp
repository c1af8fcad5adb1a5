#pragma once
// A scratch directory unique to this process and the running test, so tests can run in parallel
// (ctest -j) and alongside another checkout's test run without sharing files.

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

namespace openstation::testing_support {

/// TempDir()/<stem>-<pid>-<suite>.<test>; not created, not cleaned: the caller owns it.
inline std::filesystem::path unique_temp_path(const std::string& stem) {
  std::string test = "outside-test";
  if (const auto* info = ::testing::UnitTest::GetInstance()->current_test_info()) {
    test = std::string(info->test_suite_name()) + "." + info->name();
  }
  for (auto& c : test) {
    if (c == '/') c = '_';
  }
  return std::filesystem::path(::testing::TempDir()) /
         (stem + "-" + std::to_string(::getpid()) + "-" + test);
}

}  // namespace openstation::testing_support

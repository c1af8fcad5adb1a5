#pragma once
/// Shared by the fuzz targets: a check that aborts (so libFuzzer records the input) when an
/// invariant of a successful parse does not hold.

#include <cstdio>
#include <cstdlib>

#define OS_FUZZ_CHECK(cond)                                                             \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)

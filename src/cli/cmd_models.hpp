#pragma once
/// Shared by `openstation models` and `openstation estimate`.

#include "core/error.hpp"
#include "model/catalog.hpp"

#include <string>

namespace openstation::cli {

/// The built-in cards plus `file` if given (it must exist: not_found otherwise), else plus the
/// user's catalog.json in the data dir when there is one.
core::Result<model::Catalog> load_catalog(const std::string& file);

}  // namespace openstation::cli

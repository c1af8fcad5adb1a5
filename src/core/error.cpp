#include "core/error.hpp"

namespace openstation::core {

std::string_view to_string(Errc c) noexcept {
  switch (c) {
    case Errc::invalid_argument: return "invalid_argument";
    case Errc::not_found: return "not_found";
    case Errc::conflict: return "conflict";
    case Errc::unauthorized: return "unauthorized";
    case Errc::forbidden: return "forbidden";
    case Errc::parse_error: return "parse_error";
    case Errc::io_error: return "io_error";
    case Errc::unavailable: return "unavailable";
    case Errc::unsupported: return "unsupported";
    case Errc::resource_exhausted: return "resource_exhausted";
    case Errc::internal: return "internal";
  }
  return "internal";
}

int http_status(Errc c) noexcept {
  switch (c) {
    case Errc::invalid_argument:
    case Errc::parse_error:
    case Errc::unsupported: return 400;
    case Errc::unauthorized: return 401;
    case Errc::forbidden: return 403;
    case Errc::not_found: return 404;
    case Errc::conflict:
    case Errc::resource_exhausted: return 409;
    case Errc::unavailable: return 503;
    case Errc::io_error:
    case Errc::internal: return 500;
  }
  return 500;
}

int exit_code(Errc c) noexcept {
  switch (c) {
    case Errc::invalid_argument:
    case Errc::not_found:
    case Errc::parse_error:
    case Errc::unsupported: return 2;
    default: return 1;
  }
}

void throw_exception_from_error(const Error& e, const boost::source_location&) {
  throw ErrorException(e);
}

}  // namespace openstation::core

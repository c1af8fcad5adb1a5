#pragma once
/// Project-wide error values. Expected failures travel as `core::Result<T>`; each `Errc` has a
/// stable string code (for the API and the UI to localise), an HTTP status and a CLI exit code,
/// all mapped here and nowhere else.

#include <boost/system/result.hpp>

#include <string>
#include <string_view>
#include <utility>

namespace openstation::core {

/// Broad error categories. The `detail` string of an `Error` carries the precise, stable code
/// (e.g. "estimate.kv_cache_too_small"); the category decides status and exit code.
enum class Errc {
  invalid_argument,    ///< the caller's input is wrong (400, exit 2)
  not_found,           ///< a named thing does not exist (404, exit 2)
  conflict,            ///< a name collision or a state that forbids the action (409, exit 1)
  unauthorized,        ///< missing or wrong credentials (401, exit 1)
  forbidden,           ///< authenticated but not allowed (403, exit 1)
  parse_error,         ///< a file or body could not be parsed (400, exit 2)
  io_error,            ///< the system refused a read/write (500, exit 1)
  unavailable,         ///< an upstream or resource is not there now (503, exit 1)
  unsupported,         ///< valid but not supported here (400, exit 2)
  resource_exhausted,  ///< not enough memory, disk, GPUs, quota (409, exit 1)
  internal,            ///< a bug (500, exit 1)
};

/// The stable lower-case name of a category ("invalid_argument").
std::string_view to_string(Errc c) noexcept;
/// HTTP status for a category.
int http_status(Errc c) noexcept;
/// Process exit code for a category: 2 for bad input, 1 for runtime failures.
int exit_code(Errc c) noexcept;

/// One error: a category, a stable machine-readable code, a human message and, where the error is
/// about one input, the field (flag, JSON path, file) it concerns.
struct Error {
  Errc category = Errc::internal;
  std::string code;     ///< stable, dotted, e.g. "gguf.truncated"; never localised
  std::string message;  ///< English, names the numbers and how to fix it
  std::string field;    ///< optional: the input it is about

  Error() = default;
  Error(Errc cat, std::string c, std::string msg, std::string fld = {})
      : category(cat), code(std::move(c)), message(std::move(msg)), field(std::move(fld)) {}
};

/// Thrown only at boundaries that must throw (startup); carries an Error.
class ErrorException : public std::exception {
 public:
  explicit ErrorException(Error e) : error_(std::move(e)) {}
  const char* what() const noexcept override { return error_.message.c_str(); }
  const Error& error() const noexcept { return error_; }

 private:
  Error error_;
};

/// Used by boost::system::result<T, Error>::value() when it holds an error.
[[noreturn]] void throw_exception_from_error(const Error& e, const boost::source_location& loc);

template <class T>
using Result = boost::system::result<T, Error>;

/// Shorthands for the common categories.
inline Error invalid(std::string code, std::string msg, std::string field = {}) {
  return {Errc::invalid_argument, std::move(code), std::move(msg), std::move(field)};
}
inline Error not_found(std::string code, std::string msg, std::string field = {}) {
  return {Errc::not_found, std::move(code), std::move(msg), std::move(field)};
}
inline Error parse_error(std::string code, std::string msg, std::string field = {}) {
  return {Errc::parse_error, std::move(code), std::move(msg), std::move(field)};
}
inline Error io_error(std::string code, std::string msg, std::string field = {}) {
  return {Errc::io_error, std::move(code), std::move(msg), std::move(field)};
}

}  // namespace openstation::core

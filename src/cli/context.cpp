#include "cli/context.hpp"

#include "core/json.hpp"

#include <boost/json.hpp>

#include <ostream>

namespace openstation::cli {

void Context::print_json(const boost::json::value& v) const {
  *out << core::json::pretty(v);
}

void Context::fail(const core::Error& e) {
  exit_code = core::exit_code(e.category);
  if (json) {
    boost::json::object body{{"code", e.code},
                             {"category", std::string(core::to_string(e.category))},
                             {"message", e.message}};
    if (!e.field.empty()) body["field"] = e.field;
    print_json(boost::json::object{{"error", std::move(body)}});
  } else {
    *err << "error: " << e.message << "\n";
  }
}

}  // namespace openstation::cli

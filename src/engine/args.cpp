#include "engine/args.hpp"

#include "core/strings.hpp"

#include <boost/json/parse.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <set>
#include <utility>

namespace openstation::engine {
namespace {

using core::Result;

core::Error arg_error(std::string code, std::string message, std::string_view field) {
  return core::invalid(std::move(code), std::move(message), std::string(field));
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

/// argparse's negative-number pattern: ^-\d+$ or ^-\d*\.\d+$.
bool is_negative_number(std::string_view s) {
  if (s.size() < 2 || s[0] != '-') return false;
  s.remove_prefix(1);
  const auto dot = s.find('.');
  const auto all_digits = [](std::string_view t) {
    return std::all_of(t.begin(), t.end(), is_digit);
  };
  if (dot == std::string_view::npos) return all_digits(s);
  return dot + 1 < s.size() && all_digits(s.substr(0, dot)) && all_digits(s.substr(dot + 1));
}

/// A token the engines' parsers would take for an option rather than a value.
bool looks_like_flag(std::string_view s) {
  return !s.empty() && s[0] == '-' && !is_negative_number(s);
}

std::optional<bool> bool_word(std::string_view s) {
  const auto l = core::to_lower(s);
  if (l == "true") return true;
  if (l == "false") return false;
  return std::nullopt;
}

/// Words a user may type after a value-less boolean, meaning to set it.
std::optional<bool> boolish(std::string_view s) {
  const auto l = core::to_lower(s);
  if (l == "true" || l == "yes" || l == "on" || l == "1") return true;
  if (l == "false" || l == "no" || l == "off" || l == "0") return false;
  return std::nullopt;
}

std::optional<std::int64_t> plain_int(std::string_view s) {
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  if (s.empty() || s[0] == '+') return std::nullopt;
  std::int64_t v = 0;
  const auto* end = s.data() + s.size();
  const auto r = std::from_chars(s.data(), end, v);
  if (r.ec != std::errc() || r.ptr != end) return std::nullopt;
  if (s[0] == '-' && s.size() == 1) return std::nullopt;
  return v;
}

std::optional<double> plain_number(std::string_view s) {
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  if (s.empty() || s[0] == '+') return std::nullopt;
  double v = 0;
  const auto* end = s.data() + s.size();
  const auto r = std::from_chars(s.data(), end, v);
  if (r.ec != std::errc() || r.ptr != end || !std::isfinite(v)) return std::nullopt;
  return v;
}

std::string format_number(double v) {
  if (v == std::floor(v) && std::fabs(v) < 1e15)
    return std::to_string(static_cast<std::int64_t>(v));
  std::string s = std::to_string(v);
  while (!s.empty() && s.back() == '0') s.pop_back();
  return s;
}

std::string range_text(const FlagSpec& f) {
  std::string out;
  if (f.min) out += std::string(f.min_exclusive ? "> " : ">= ") + format_number(*f.min);
  if (f.max) out += std::string(out.empty() ? "" : " and ") + "<= " + format_number(*f.max);
  return out;
}

Result<void> check_range(const EngineSpec& spec, const FlagSpec& f, double v,
                         std::string_view typed, std::string_view field) {
  const bool low = f.min && (f.min_exclusive ? !(v > *f.min) : v < *f.min);
  const bool high = f.max && v > *f.max;
  if (!low && !high) return {};
  return arg_error("args.out_of_range",
                   std::string(field) + " must be " + range_text(f) + " in " + spec.describe() +
                       ", got " + std::string(typed),
                   field);
}

std::string type_example(const FlagSpec& f, FlagType t) {
  switch (t) {
    case FlagType::integer:
      return f.human_readable ? "an integer such as 4096, 64k or 64K" : "an integer";
    case FlagType::number: return "a number";
    case FlagType::json: return "a JSON value";
    case FlagType::choice: return "one of " + core::join(f.choices);
    default: return "a value";
  }
}

Result<std::string> check_choice(const EngineSpec& spec, const FlagSpec& f, std::string value,
                                 std::string_view field) {
  if (f.choices.empty()) return value;
  if (std::find(f.choices.begin(), f.choices.end(), value) != f.choices.end()) return value;
  std::string msg = "invalid value '" + value + "' for " + std::string(field) + " in " +
                    spec.describe() + "; " + (f.choices_strict ? "allowed" : "known") +
                    " values: " + core::join(f.choices);
  if (f.accepts_none) msg += ", None";
  if (!f.choices_strict) msg += " (the platform accepts only the values the engine knows)";
  if (const auto near = core::closest(value, f.choices); !near.empty()) {
    msg += ". Did you mean " + near + "?";
  }
  return arg_error("args.invalid_choice", msg, field);
}

/// Checks one value of `f` (of type `type`: the flag's, or its item type for lists) and returns
/// it normalised (human-readable integers expanded).
Result<std::string> check_value(const EngineSpec& spec, const FlagSpec& f, FlagType type,
                                std::string_view value, std::string_view field) {
  if (f.accepts_none && value == "None") return std::string(value);
  for (const auto& sv : f.special_values) {
    if (core::to_lower(value) == sv) return sv;
  }
  switch (type) {
    case FlagType::integer: {
      std::int64_t v = 0;
      if (f.human_readable) {
        auto h = parse_human_int(value, field);
        if (!h) {
          auto e = h.error();
          e.message += " (in " + spec.describe() + ")";
          return e;
        }
        v = *h;
      } else if (auto p = plain_int(value)) {
        v = *p;
      } else {
        std::string msg = std::string(field) + " expects an integer in " + spec.describe() +
                          ", got '" + std::string(value) + "'";
        if (auto h = parse_human_int(value); h && !value.empty() && !is_digit(value.back())) {
          msg += ": this version does not accept suffixes like 64K; write " + std::to_string(*h);
        }
        return arg_error("args.wrong_type", msg, field);
      }
      if (auto r = check_range(spec, f, static_cast<double>(v), value, field); !r) return r.error();
      return check_choice(spec, f, std::to_string(v), field);
    }
    case FlagType::number: {
      auto v = plain_number(value);
      if (!v) {
        return arg_error("args.wrong_type",
                         std::string(field) + " expects a number in " + spec.describe() +
                             ", got '" + std::string(value) + "'",
                         field);
      }
      if (auto r = check_range(spec, f, *v, value, field); !r) return r.error();
      return check_choice(spec, f, std::string(value), field);
    }
    case FlagType::json: {
      boost::system::error_code ec;
      (void)boost::json::parse(value, ec);
      if (ec) {
        return arg_error("args.wrong_type",
                         std::string(field) + " expects JSON in " + spec.describe() + ", got '" +
                             std::string(value) + "' (" + ec.message() +
                             "); quote the whole value, e.g. '{\"key\": 1}'",
                         field);
      }
      return std::string(value);
    }
    default: return check_choice(spec, f, std::string(value), field);
  }
}

std::vector<std::string> all_option_strings(const EngineSpec& spec) {
  std::vector<std::string> out;
  for (const auto& f : spec.flags) {
    out.push_back(f.name);
    out.insert(out.end(), f.aliases.begin(), f.aliases.end());
  }
  return out;
}

/// The message for a flag `spec` does not have: did-you-mean and the other tables that have it.
core::Error unknown_flag(const EngineSpec& spec, const std::string& norm, std::string_view typed) {
  std::string msg = "unknown flag " + std::string(typed) + " for " + spec.describe();
  // The same engine's other tables.
  std::vector<std::string> in_other;
  for (const auto* other : engines_of(spec.kind)) {
    if (other == &spec || other->open_flags) continue;
    if (other->find(norm) != nullptr) in_other.push_back(other->describe());
  }
  if (!in_other.empty()) {
    msg += "; it exists in " + core::join(in_other) + ": check the engine version";
  }
  // --no-x for a boolean without a negative form.
  if (core::starts_with(norm, "--no-")) {
    if (const auto* g = spec.find("--" + norm.substr(5)); g != nullptr && g->is_bool()) {
      if (g->bool_style == BoolStyle::store_boolean) {
        msg += "; this version writes it as " + g->name + " False";
      } else {
        msg += "; " + g->name + " is off unless given: leave it out";
      }
      return arg_error("args.unknown_flag", msg, typed);
    }
  }
  const auto options = all_option_strings(spec);
  const auto near = core::closest(norm, options);
  if (!near.empty()) {
    msg += ". Did you mean " + near + "?";
  } else if (norm.size() > 3) {
    std::vector<std::string> longer;
    for (const auto& o : options) {
      if (core::starts_with(o, norm)) longer.push_back(o);
    }
    if (!longer.empty() && longer.size() <= 5) {
      msg += ". Did you mean " + std::string(longer.size() == 1 ? "" : "one of ") +
             core::join(longer) + "?";
    }
  }
  return arg_error("args.unknown_flag", msg, typed);
}

std::string no_value_hint(const EngineSpec& spec, const FlagSpec& f, std::optional<bool> meant) {
  std::string msg = f.name + " takes no value in " + spec.describe();
  if (f.bool_style == BoolStyle::optional_action) {
    const std::string off = "--no-" + f.name.substr(2);
    if (meant == false) {
      msg += ": to turn it off write " + off + " (to turn it on, " + f.name + ")";
    } else {
      msg += ": write " + f.name + " to turn it on or " + off + " to turn it off";
    }
  } else {
    msg += ": give " + f.name + " to turn it on, leave it out to keep it off";
  }
  return msg;
}

struct Resolved {
  const FlagSpec* flag = nullptr;
  bool negated = false;
  std::string dotted_key;  ///< "mode" in --compilation-config.mode
  std::optional<std::string> inline_value;
};

Result<Resolved> resolve_flag(const EngineSpec& spec, std::string_view tok, std::string& typed) {
  Resolved r;
  std::string_view name = tok;
  if (const auto eq = tok.find('='); eq != std::string_view::npos) {
    name = tok.substr(0, eq);
    r.inline_value = std::string(tok.substr(eq + 1));
  }
  typed = std::string(name);
  if (name == "-" || name == "--") {
    return arg_error(
        "args.empty_flag",
        "'" + std::string(tok) + "' is an empty flag: write a flag name such as --max-model-len",
        tok);
  }
  std::string norm(name);
  if (spec.underscore_equals_dash && core::starts_with(norm, "--")) {
    std::replace(norm.begin() + 2, norm.end(), '_', '-');
  }
  if ((r.flag = spec.find(norm)) != nullptr) return r;

  const bool long_flag = core::starts_with(norm, "--");
  if (long_flag) {
    if (const auto dot = norm.find('.'); dot != std::string::npos) {
      const auto* base = spec.find(norm.substr(0, dot));
      if (base != nullptr && base->dotted_keys) {
        r.flag = base;
        r.dotted_key = std::string(name.substr(dot + 1));
        if (r.dotted_key.empty() || r.dotted_key == "+") {
          return arg_error("args.empty_flag",
                           "'" + typed + "' names no key: write e.g. " + base->name + ".mode 3",
                           typed);
        }
        return r;
      }
    }
    if (core::starts_with(norm, "--no-")) {
      const auto* g = spec.find("--" + norm.substr(5));
      if (g != nullptr && g->is_bool() && g->bool_style == BoolStyle::optional_action) {
        r.flag = g;
        r.negated = true;
        return r;
      }
    }
    if (spec.allow_prefix_abbrev) {
      std::vector<const FlagSpec*> flags;
      std::vector<std::string> matched;
      for (const auto& f : spec.flags) {
        bool any = false;
        if (core::starts_with(f.name, norm)) {
          matched.push_back(f.name);
          any = true;
        }
        for (const auto& a : f.aliases) {
          if (core::starts_with(a, norm)) {
            matched.push_back(a);
            any = true;
          }
        }
        if (any) flags.push_back(&f);
      }
      if (flags.size() == 1) {
        r.flag = flags.front();
        return r;
      }
      if (flags.size() > 1) {
        return arg_error("args.ambiguous_flag",
                         "ambiguous flag " + typed + " for " + spec.describe() + ": it could be " +
                             core::join(matched) + "; write the flag in full",
                         typed);
      }
    }
  } else if (tok.size() > 2 && tok[1] != '-') {
    // argparse: a one-letter option with its value attached (-O3, -qfp8).
    const auto* g = spec.find(tok.substr(0, 2));
    if (g != nullptr && !g->is_bool()) {
      r.flag = g;
      r.inline_value = std::string(tok.substr(2));
      typed = std::string(tok.substr(0, 2));
      return r;
    }
  }
  return unknown_flag(spec, norm, typed);
}

/// Open specs (custom engines, llama.cpp): any flag, values as strings.
Result<ParsedArgs> parse_open(const EngineSpec& spec, const std::vector<std::string>& tokens) {
  ParsedArgs out;
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    const std::string& tok = tokens[i];
    if (!looks_like_flag(tok)) {
      return arg_error(
          "args.stray_value",
          "'" + tok + "' is not a flag; extended parameters are flags with their values", tok);
    }
    ParsedFlag pf;
    std::string_view name = tok;
    if (const auto eq = tok.find('='); eq != std::string::npos && core::starts_with(tok, "--")) {
      name = std::string_view(tok).substr(0, eq);
      pf.values.push_back(tok.substr(eq + 1));
    }
    if (name == "-" || name == "--") {
      return arg_error("args.empty_flag", "'" + tok + "' is an empty flag", tok);
    }
    pf.name = std::string(name);
    pf.as_typed = pf.name;
    if (pf.values.empty()) {
      while (i + 1 < tokens.size() && !looks_like_flag(tokens[i + 1]))
        pf.values.push_back(tokens[++i]);
    }
    (void)spec;
    out.flags.push_back(std::move(pf));
  }
  return out;
}

}  // namespace

Result<std::int64_t> parse_human_int(std::string_view text, std::string_view flag) {
  const std::string field = flag.empty() ? std::string("value") : std::string(flag);
  if (auto p = plain_int(text)) return *p;
  const auto bad = [&](std::string why) -> core::Error {
    return arg_error("args.wrong_type",
                     field +
                         " expects an integer such as 4096, 64k (64,000) or 64K (65,536), got '" +
                         std::string(text) + "'" + why,
                     flag);
  };
  if (text.size() < 2) return bad("");
  const char suffix = text.back();
  static constexpr std::string_view kDecimal = "kmgt";
  static constexpr std::string_view kBinary = "KMGT";
  const auto dpos = kDecimal.find(suffix);
  const auto bpos = kBinary.find(suffix);
  if (dpos == std::string_view::npos && bpos == std::string_view::npos) return bad("");
  const std::string_view number = text.substr(0, text.size() - 1);
  const auto dot = number.find('.');
  const std::string_view whole = number.substr(0, dot);
  const std::string_view frac =
      dot == std::string_view::npos ? std::string_view() : number.substr(dot + 1);
  const auto digits = [](std::string_view t) {
    return !t.empty() && std::all_of(t.begin(), t.end(), is_digit);
  };
  if (!digits(whole) || (dot != std::string_view::npos && !digits(frac))) return bad("");
  if (bpos != std::string_view::npos && dot != std::string_view::npos) {
    return arg_error("args.wrong_type",
                     field + ": decimals are not allowed with a binary suffix like " +
                         std::string(1, suffix) + " (1" + std::string(1, suffix) + " = 1024^" +
                         std::to_string(bpos + 1) + "), got '" + std::string(text) +
                         "'. Did you mean " + std::string(number) + std::string(1, kDecimal[bpos]) +
                         " (decimal) instead?",
                     flag);
  }
  constexpr auto kMax = std::numeric_limits<std::int64_t>::max();
  std::int64_t mult = 1;
  int zeros = 0;
  if (bpos != std::string_view::npos) {
    mult = std::int64_t{1} << (10 * (bpos + 1));
  } else {
    zeros = 3 * static_cast<int>(dpos + 1);
    for (int i = 0; i < zeros; ++i) mult *= 10;
  }
  std::int64_t w = 0;
  if (std::from_chars(whole.data(), whole.data() + whole.size(), w).ec != std::errc())
    return bad(": too large");
  std::int64_t v = 0;
  if (__builtin_mul_overflow(w, mult, &v)) return bad(": too large");
  if (!frac.empty()) {
    // 25.6k: the fraction's digits scaled by the remaining powers of ten; anything below 1 left
    // over means the value is not a whole number.
    std::int64_t f = 0;
    int scale = zeros;
    for (char c : frac) {
      if (scale > 0) {
        f = f * 10 + (c - '0');
        --scale;
      } else if (c != '0') {
        return bad(": not a whole number");
      }
    }
    for (; scale > 0; --scale) f *= 10;
    if (v > kMax - f) return bad(": too large");
    v += f;
  }
  return v;
}

Result<std::vector<std::string>> split_command_line(std::string_view text) {
  std::vector<std::string> out;
  std::string cur;
  bool in_word = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      if (in_word) out.push_back(std::move(cur));
      cur.clear();
      in_word = false;
      continue;
    }
    in_word = true;
    if (c == '\\') {
      if (i + 1 >= text.size()) {
        return arg_error(
            "args.trailing_backslash",
            "the extended parameters end with a backslash; remove it or escape it as \\\\", "args");
      }
      if (text[i + 1] == '\n') {  // line continuation
        ++i;
        if (cur.empty()) in_word = false;
        continue;
      }
      cur += text[++i];
    } else if (c == '\'') {
      const auto end = text.find('\'', i + 1);
      if (end == std::string_view::npos) {
        return arg_error("args.unbalanced_quote",
                         "unbalanced single quote at character " + std::to_string(i + 1) +
                             " of the extended parameters: close it with another '",
                         "args");
      }
      cur.append(text.substr(i + 1, end - i - 1));
      i = end;
    } else if (c == '"') {
      std::size_t j = i + 1;
      for (; j < text.size() && text[j] != '"'; ++j) {
        if (text[j] == '\\' && j + 1 < text.size() &&
            (text[j + 1] == '"' || text[j + 1] == '\\' || text[j + 1] == '$' ||
             text[j + 1] == '`' || text[j + 1] == '\n')) {
          if (text[j + 1] != '\n') cur += text[j + 1];
          ++j;
        } else {
          cur += text[j];
        }
      }
      if (j >= text.size()) {
        return arg_error("args.unbalanced_quote",
                         "unbalanced double quote at character " + std::to_string(i + 1) +
                             " of the extended parameters: close it with another \"",
                         "args");
      }
      i = j;
    } else {
      cur += c;
    }
  }
  if (in_word) out.push_back(std::move(cur));
  return out;
}

std::string join_command_line(const std::vector<std::string>& argv) {
  std::string out;
  for (std::size_t i = 0; i < argv.size(); ++i) {
    if (i) out += ' ';
    const auto& a = argv[i];
    const bool plain = !a.empty() && std::all_of(a.begin(), a.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) ||
             std::string_view("-_+=.,/:@%^").find(c) != std::string_view::npos;
    });
    if (plain) {
      out += a;
      continue;
    }
    out += '\'';
    for (char c : a) {
      if (c == '\'') {
        out += "'\\''";
      } else {
        out += c;
      }
    }
    out += '\'';
  }
  return out;
}

const ParsedFlag* ParsedArgs::find(std::string_view canonical_name) const {
  for (const auto& f : flags) {
    if (f.name == canonical_name) return &f;
  }
  return nullptr;
}

void ParsedArgs::set(ParsedFlag flag) {
  for (auto& f : flags) {
    if (f.name == flag.name) {
      f = std::move(flag);
      return;
    }
  }
  flags.push_back(std::move(flag));
}

bool ParsedArgs::erase(std::string_view canonical_name) {
  const auto before = flags.size();
  std::erase_if(flags, [&](const ParsedFlag& f) { return f.name == canonical_name; });
  return flags.size() != before;
}

Result<ParsedArgs> parse_args(const EngineSpec& spec, std::string_view text) {
  auto tokens = split_command_line(text);
  if (!tokens) return tokens.error();
  return parse_args(spec, *tokens);
}

Result<ParsedArgs> parse_args(const EngineSpec& spec, const std::vector<std::string>& tokens) {
  if (spec.open_flags) return parse_open(spec, tokens);
  ParsedArgs out;
  std::vector<std::pair<std::string, std::string>> seen;  // key, spelling
  const ParsedFlag* last = nullptr;
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    const std::string& tok = tokens[i];
    if (tok == "-" || tok == "--") {
      return arg_error("args.empty_flag",
                       "'" + tok + "' is an empty flag: write a flag name such as --max-model-len",
                       tok);
    }
    if (!looks_like_flag(tok)) {
      std::string msg = "'" + tok + "' is not a flag";
      if (last == nullptr) {
        msg +=
            ": the platform passes the model itself; extended parameters are flags such as "
            "--max-model-len 4096";
      } else {
        msg += " and " + last->as_typed + " takes " +
               (last->spec != nullptr && last->spec->is_bool() ? std::string("no value")
                                                               : std::string("one value")) +
               "; quote a value that contains spaces";
      }
      return arg_error("args.stray_value", msg, tok);
    }
    std::string typed;
    auto resolved = resolve_flag(spec, tok, typed);
    if (!resolved) return resolved.error();
    const FlagSpec& f = *resolved->flag;
    if (f.platform_owned) {
      return arg_error("args.platform_owned",
                       typed + " is set by the platform in " + spec.describe() + ": " +
                           f.owned_reason + "; remove it from the extended parameters",
                       typed);
    }
    ParsedFlag pf;
    pf.spec = &f;
    pf.name = resolved->dotted_key.empty() ? f.name : f.name + "." + resolved->dotted_key;
    pf.as_typed = typed;
    const auto& inline_value = resolved->inline_value;

    if (!resolved->dotted_key.empty()) {
      // vLLM parses dotted values as JSON, human-readable ints or strings: any value is fine.
      if (inline_value) {
        pf.values.push_back(*inline_value);
      } else if (i + 1 < tokens.size() && !looks_like_flag(tokens[i + 1])) {
        pf.values.push_back(tokens[++i]);
      } else {
        return arg_error("args.missing_value", typed + " needs a value, e.g. " + typed + " 3",
                         typed);
      }
    } else if (f.is_bool()) {
      if (f.bool_style == BoolStyle::store_boolean) {
        std::optional<std::string> v = inline_value;
        if (!v && i + 1 < tokens.size() && !looks_like_flag(tokens[i + 1])) v = tokens[++i];
        if (v) {
          auto b = bool_word(*v);
          if (!b) {
            return arg_error(
                "args.wrong_type",
                typed + " expects true or false in " + spec.describe() + ", got '" + *v + "'",
                typed);
          }
          pf.bool_value = *b;
        } else {
          pf.bool_value = true;
        }
      } else {
        if (inline_value) {
          return arg_error("args.unexpected_value",
                           no_value_hint(spec, f, bool_word(*inline_value)), typed);
        }
        if (i + 1 < tokens.size()) {
          if (auto b = boolish(tokens[i + 1])) {
            return arg_error("args.unexpected_value", no_value_hint(spec, f, b), typed);
          }
        }
        pf.bool_value = !resolved->negated;
      }
    } else if (f.multi_value) {
      std::vector<std::string> raw;
      if (inline_value) {
        raw.push_back(*inline_value);
      } else {
        while (i + 1 < tokens.size() && !looks_like_flag(tokens[i + 1])) raw.push_back(tokens[++i]);
      }
      if (raw.empty() && !f.value_optional) {
        return arg_error("args.missing_value",
                         typed + " needs one or more values (" + type_example(f, f.item_type) + ")",
                         typed);
      }
      for (const auto& v : raw) {
        auto c = check_value(spec, f, f.item_type, v, typed);
        if (!c) return c.error();
        pf.values.push_back(std::move(*c));
      }
    } else {
      std::optional<std::string> v = inline_value;
      if (!v && i + 1 < tokens.size() && !looks_like_flag(tokens[i + 1])) v = tokens[++i];
      if (!v && !f.value_optional) {
        std::string msg = typed + " needs a value (" + type_example(f, f.type) + ")";
        if (i + 1 < tokens.size()) {
          msg += "; a value that starts with '-' is written " + typed + "=VALUE";
        }
        return arg_error("args.missing_value", msg, typed);
      }
      if (v) {
        auto c = check_value(spec, f, f.type, *v, typed);
        if (!c) return c.error();
        pf.values.push_back(std::move(*c));
      }
    }

    const std::string key = pf.name;
    auto it = std::find_if(seen.begin(), seen.end(), [&](const auto& s) { return s.first == key; });
    if (it != seen.end() && !f.repeatable) {
      const std::string both =
          it->second == tok ? "twice as " + tok : "twice: as " + it->second + " and as " + tok;
      return arg_error("args.duplicate_flag", pf.name + " is given " + both + "; give it once",
                       typed);
    }
    seen.emplace_back(key, tok);
    out.flags.push_back(std::move(pf));
    last = &out.flags.back();
  }
  return out;
}

std::vector<std::string> render(const EngineSpec& spec, const ParsedArgs& args) {
  std::vector<std::string> argv;
  for (const auto& pf : args.flags) {
    const FlagSpec* f = pf.spec;
    if (f == nullptr && !spec.open_flags) f = spec.find(pf.name);
    const bool dotted =
        f != nullptr && pf.name != f->name && pf.name.find('.') != std::string::npos;
    if (f != nullptr && f->is_bool() && !dotted) {
      const bool on = pf.bool_value.value_or(true);
      switch (f->bool_style) {
        case BoolStyle::presence:
          if (on) argv.push_back(f->name);
          break;
        case BoolStyle::optional_action:
          argv.push_back(on ? f->name : "--no-" + f->name.substr(2));
          break;
        case BoolStyle::store_boolean:
          argv.push_back(f->name);
          if (!on) argv.emplace_back("False");
          break;
      }
      continue;
    }
    if (pf.values.size() == 1 && looks_like_flag(pf.values[0])) {
      argv.push_back(pf.name + "=" + pf.values[0]);
      continue;
    }
    argv.push_back(pf.name);
    argv.insert(argv.end(), pf.values.begin(), pf.values.end());
  }
  return argv;
}

Result<ParsedFlag> make_flag(const EngineSpec& spec, std::string_view name,
                             std::vector<std::string> values) {
  ParsedFlag pf;
  pf.as_typed = std::string(name);
  if (spec.open_flags) {
    pf.name = std::string(name);
    pf.values = std::move(values);
    return pf;
  }
  const FlagSpec* f = spec.find(name);
  if (f == nullptr) return unknown_flag(spec, std::string(name), name);
  if (f->is_bool()) {
    return arg_error("args.wrong_type", f->name + " is a boolean: use make_bool_flag", name);
  }
  pf.spec = f;
  pf.name = f->name;
  if (values.empty() && !f->value_optional) {
    return arg_error("args.missing_value", f->name + " needs a value", name);
  }
  if (values.size() > 1 && !f->multi_value) {
    return arg_error("args.stray_value", f->name + " takes one value", name);
  }
  for (const auto& v : values) {
    auto c = check_value(spec, *f, f->multi_value ? f->item_type : f->type, v, f->name);
    if (!c) return c.error();
    pf.values.push_back(std::move(*c));
  }
  return pf;
}

Result<ParsedFlag> make_bool_flag(const EngineSpec& spec, std::string_view name, bool value) {
  ParsedFlag pf;
  pf.as_typed = std::string(name);
  if (spec.open_flags) {
    if (!value) {
      return arg_error(
          "args.cannot_negate",
          std::string(name) + " cannot be set to false for " + spec.describe() + "; leave it out",
          name);
    }
    pf.name = std::string(name);
    return pf;
  }
  const FlagSpec* f = spec.find(name);
  if (f == nullptr) return unknown_flag(spec, std::string(name), name);
  if (!f->is_bool()) {
    return arg_error("args.wrong_type", f->name + " is not a boolean: use make_flag", name);
  }
  if (!value && f->bool_style == BoolStyle::presence) {
    return arg_error("args.cannot_negate",
                     f->name + " has no off form in " + spec.describe() +
                         "; it is off unless given, so leave it out",
                     name);
  }
  pf.spec = f;
  pf.name = f->name;
  pf.bool_value = value;
  return pf;
}

}  // namespace openstation::engine

#pragma once
/// The mapping between the record structs and their tables, written once per entity as a list of
/// `field("column", &T::member)` lines; the generic repos (sql_repo.hpp) derive every statement
/// and the row conversions from it. Private to the store module.

#include "store/detail/db.hpp"
#include "store/store.hpp"

#include <charconv>
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace openstation::store::detail {

/// Converts one member type to and from a SQL value. `decode` returns false for a value that
/// cannot be this type (a corrupt row).
template <class M, class = void>
struct Codec;

inline bool decode_int(const Value& v, std::int64_t& out) {
  if (const auto* n = std::get_if<std::int64_t>(&v)) {
    out = *n;
    return true;
  }
  if (const auto* s = std::get_if<std::string>(&v)) {
    const auto* end = s->data() + s->size();
    auto [p, ec] = std::from_chars(s->data(), end, out);
    return ec == std::errc() && p == end;
  }
  if (const auto* d = std::get_if<double>(&v)) {
    out = static_cast<std::int64_t>(*d);
    return true;
  }
  return false;
}

template <>
struct Codec<std::string> {
  static Value encode(const std::string& s) { return s; }
  static bool decode(const Value& v, std::string& out) {
    if (const auto* s = std::get_if<std::string>(&v)) {
      out = *s;
      return true;
    }
    if (const auto* n = std::get_if<std::int64_t>(&v)) {
      out = std::to_string(*n);
      return true;
    }
    return false;
  }
};

template <class I>
struct Codec<I, std::enable_if_t<std::is_integral_v<I> && !std::is_same_v<I, bool>>> {
  static Value encode(I n) { return static_cast<std::int64_t>(n); }
  static bool decode(const Value& v, I& out) {
    std::int64_t n = 0;
    if (!decode_int(v, n)) return false;
    out = static_cast<I>(n);
    return true;
  }
};

template <>
struct Codec<bool> {
  static Value encode(bool b) { return std::int64_t{b ? 1 : 0}; }
  static bool decode(const Value& v, bool& out) {
    std::int64_t n = 0;
    if (!decode_int(v, n)) return false;
    out = n != 0;
    return true;
  }
};

template <>
struct Codec<double> {
  static Value encode(double d) { return d; }
  static bool decode(const Value& v, double& out);
};

/// A time as the database keeps it: integer milliseconds since the epoch.
inline std::int64_t to_millis(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
inline TimePoint from_millis(std::int64_t ms) {
  return TimePoint(std::chrono::duration_cast<TimePoint::duration>(std::chrono::milliseconds(ms)));
}

template <>
struct Codec<TimePoint> {
  static Value encode(TimePoint t) { return to_millis(t); }
  static bool decode(const Value& v, TimePoint& out) {
    std::int64_t ms = 0;
    if (!decode_int(v, ms)) return false;
    out = from_millis(ms);
    return true;
  }
};

/// Lists and maps are stored as JSON text (implemented in mapping.cpp, away from the headers).
template <>
struct Codec<std::vector<std::string>> {
  static Value encode(const std::vector<std::string>& list);
  static bool decode(const Value& v, std::vector<std::string>& out);
};
template <>
struct Codec<std::map<std::string, std::string>> {
  static Value encode(const std::map<std::string, std::string>& map);
  static bool decode(const Value& v, std::map<std::string, std::string>& out);
};

template <class X>
struct Codec<std::optional<X>> {
  static Value encode(const std::optional<X>& o) {
    return o ? Codec<X>::encode(*o) : Value(std::monostate{});
  }
  static bool decode(const Value& v, std::optional<X>& out) {
    if (std::holds_alternative<std::monostate>(v)) {
      out.reset();
      return true;
    }
    X x{};
    if (!Codec<X>::decode(v, x)) return false;
    out = std::move(x);
    return true;
  }
};

/// Enums by their names (types.hpp's to_string / from_string).
template <class E>
struct Codec<E, std::enable_if_t<std::is_enum_v<E>>> {
  static Value encode(E e) { return std::string(to_string(e)); }
  static bool decode(const Value& v, E& out) {
    const auto* s = std::get_if<std::string>(&v);
    return s != nullptr && from_string(*s, out);
  }
};

/// A value as a parameter.
template <class M>
Value param(const M& m) {
  return Codec<M>::encode(m);
}

/// Writes a member's value into `slot`, as `slot = Codec<M>::encode(m)` would, except that a
/// string goes into a slot that already holds one by assignment, reusing its storage (the call-log
/// writer refills the same parameters for every batch instead of allocating each string anew).
template <class M>
void encode_into(const M& m, Value& slot) {
  if constexpr (std::is_same_v<M, std::string>) {
    if (auto* s = std::get_if<std::string>(&slot)) {
      s->assign(m);
      return;
    }
  }
  slot = Codec<M>::encode(m);
}

/// One column bound to one member.
template <class T>
struct Field {
  std::string_view column;
  std::function<bool(T&, const Value&)> set;
  std::function<void(const T&, Value&)> put;  ///< the member's value into an existing slot

  /// The member's value.
  Value get(const T& t) const {
    Value v;
    put(t, v);
    return v;
  }
};

template <class T, class M>
Field<T> field(std::string_view column, M T::*member) {
  return {column, [member](T& t, const Value& v) { return Codec<M>::decode(v, t.*member); },
          [member](const T& t, Value& slot) { encode_into(t.*member, slot); }};
}

/// A foreign key, seen from either end.
struct Reference {
  std::string_view column{};       ///< the referring column
  std::string_view table{};        ///< the other table
  std::string_view entity{};       ///< the other table's record, for messages ("service")
  std::string_view name_column{};  ///< referrers: the column that names a referring record
};

/// Everything the generic repos need to know about one table.
template <class T>
struct Mapping {
  std::string_view table{};
  std::string_view entity{};       ///< "user", for messages
  std::string_view id_prefix{};    ///< generated text ids ("usr"); empty = the caller gives the id
  bool serial_id = false;          ///< integer id assigned by the database (logs)
  std::vector<Field<T>> fields{};  ///< fields[0] is the primary key
  std::string_view name_column{};  ///< NamedRepo::get_by_name
  std::vector<std::string_view> unique_columns{};  ///< besides the id
  std::string_view version_column{};    ///< optimistic concurrency ("generation"), or empty
  std::string_view time_column{};       ///< logs: the column remove_before compares
  TimePoint T::*created = nullptr;      ///< stamped on create when at the epoch
  TimePoint T::*updated = nullptr;      ///< stamped on every write
  std::vector<Reference> references{};  ///< outgoing foreign keys
  std::vector<Reference> referrers{};   ///< incoming foreign keys that block deletes

  const Field<T>* find(std::string_view column) const {
    for (const auto& f : fields) {
      if (f.column == column) return &f;
    }
    return nullptr;
  }
};

/// One WHERE condition: an SQL fragment with `?` placeholders and its parameters.
struct Condition {
  std::string sql;
  Params params;
};
using Conditions = std::vector<Condition>;

/// `%` and `_` escaped for LIKE ... ESCAPE '\'.
std::string like_escape(std::string_view s);

const Mapping<User>& mapping_of(std::type_identity<User>);
const Mapping<Session>& mapping_of(std::type_identity<Session>);
const Mapping<ApiKey>& mapping_of(std::type_identity<ApiKey>);
const Mapping<Node>& mapping_of(std::type_identity<Node>);
const Mapping<JoinToken>& mapping_of(std::type_identity<JoinToken>);
const Mapping<Model>& mapping_of(std::type_identity<Model>);
const Mapping<Service>& mapping_of(std::type_identity<Service>);
const Mapping<Instance>& mapping_of(std::type_identity<Instance>);
const Mapping<Download>& mapping_of(std::type_identity<Download>);
const Mapping<Setting>& mapping_of(std::type_identity<Setting>);
const Mapping<Event>& mapping_of(std::type_identity<Event>);
const Mapping<CallLog>& mapping_of(std::type_identity<CallLog>);

Conditions conditions(const UserFilter& f);
Conditions conditions(const SessionFilter& f);
Conditions conditions(const ApiKeyFilter& f);
Conditions conditions(const NodeFilter& f);
Conditions conditions(const JoinTokenFilter& f);
Conditions conditions(const ModelFilter& f);
Conditions conditions(const ServiceFilter& f);
Conditions conditions(const InstanceFilter& f);
Conditions conditions(const DownloadFilter& f);
Conditions conditions(const SettingFilter& f);
Conditions conditions(const EventFilter& f);
Conditions conditions(const CallLogFilter& f);

}  // namespace openstation::store::detail

#include "server/auth/users_csv.hpp"

#include "core/strings.hpp"
#include "server/auth/user_rules.hpp"

#include <array>
#include <map>
#include <optional>

namespace openstation::server::auth {
namespace {

constexpr std::size_t kMaxProblems = 20;

/// One CSV field and where it starts.
struct Field {
  std::string text;
  std::size_t line = 0;
};

/// One CSV record.
struct Record {
  std::vector<Field> fields;
  std::size_t line = 0;
};

/// A problem at a place in the file.
struct Problem {
  std::string code;
  std::size_t line = 0;
  std::size_t column = 0;  ///< 1-based; 0 when about the whole line or file
  std::string column_name;
  std::string message;
};

std::string where(const Problem& p) {
  std::string s = "line " + std::to_string(p.line);
  if (p.column > 0) s += ", column " + std::to_string(p.column);
  return s;
}

/// Splits RFC 4180 text into records. On a quoting error, records up to it are returned with the
/// problem.
struct Splitter {
  std::string_view text;
  std::vector<Record> records;
  std::optional<Problem> problem;

  void run() {
    std::size_t i = 0;
    std::size_t line = 1;
    Record record{{}, line};
    Field field{{}, line};
    bool quoted = false;      // inside a quoted field
    bool was_quoted = false;  // the current field was quoted and its quote closed
    bool field_started = false;
    const auto end_field = [&] {
      if (!was_quoted) field.text = core::trim(field.text);
      record.fields.push_back(std::move(field));
      field = Field{{}, line};
      was_quoted = false;
      field_started = false;
    };
    const auto end_record = [&] {
      end_field();
      const bool blank = record.fields.size() == 1 && record.fields[0].text.empty();
      if (!blank) records.push_back(std::move(record));
      record = Record{{}, line};
      field.line = line;
    };
    while (i < text.size()) {
      const char c = text[i];
      if (quoted) {
        if (c == '"') {
          if (i + 1 < text.size() && text[i + 1] == '"') {
            field.text.push_back('"');
            i += 2;
            continue;
          }
          quoted = false;
          was_quoted = true;
          ++i;
          continue;
        }
        if (c == '\n' || (c == '\r' && (i + 1 >= text.size() || text[i + 1] != '\n'))) ++line;
        field.text.push_back(c);
        ++i;
        continue;
      }
      if (c == ',') {
        end_field();
        ++i;
        continue;
      }
      if (c == '\r' || c == '\n') {
        i += (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ? 2 : 1;
        ++line;
        end_record();
        continue;
      }
      if (was_quoted) {
        if (c == ' ' || c == '\t') {
          ++i;
          continue;
        }
        fail(record, line,
             "a character follows the closing quote of a field; a quoted field "
             "must end right before ',' or the end of the line");
        return;
      }
      if (c == '"') {
        if (field_started && !core::trim(field.text).empty()) {
          fail(record, line,
               "a quote appears inside an unquoted field; quote the whole field "
               "and double the quote inside (\"\")");
          return;
        }
        field.text.clear();
        field.line = line;
        quoted = true;
        field_started = true;
        ++i;
        continue;
      }
      field.text.push_back(c);
      field_started = true;
      ++i;
    }
    if (quoted) {
      problem = Problem{"users_csv.bad_quote",
                        field.line,
                        record.fields.size() + 1,
                        {},
                        "a quoted field is never closed; add the closing quote"};
      return;
    }
    if (field_started || !record.fields.empty()) end_record();
  }

  void fail(const Record& record, std::size_t line, std::string message) {
    problem =
        Problem{"users_csv.bad_quote", line, record.fields.size() + 1, {}, std::move(message)};
  }
};

enum class Column { username, display_name, email, role };
constexpr std::array<std::string_view, 4> kColumnNames = {"username", "display_name", "email",
                                                          "role"};

core::Error to_error(const std::vector<Problem>& problems, std::size_t total) {
  const auto& first = problems.front();
  std::string message;
  if (total == 1) {
    message = "The users file has a problem: ";
  } else {
    message = "The users file has " + std::to_string(total) + " problems: ";
  }
  for (std::size_t i = 0; i < problems.size(); ++i) {
    if (i > 0) message += "; ";
    const auto& p = problems[i];
    message += where(p);
    if (!p.column_name.empty()) message += " (" + p.column_name + ")";
    message += ": " + p.message;
  }
  if (total > problems.size()) {
    message += "; and " + std::to_string(total - problems.size()) + " more";
  }
  message += ". Nothing was imported.";
  return core::invalid(first.code, std::move(message), where(first));
}

/// Maps a validation error of user_rules to the import's code.
std::string import_code(const core::Error& e) {
  const auto dot = e.code.find('.');
  return "users_csv." + (dot == std::string::npos ? e.code : e.code.substr(dot + 1));
}

}  // namespace

core::Result<std::vector<UserImportRow>> parse_users_csv(std::string_view text) {
  constexpr std::string_view kBom = "\xEF\xBB\xBF";
  if (text.substr(0, kBom.size()) == kBom) text.remove_prefix(kBom.size());

  Splitter splitter{text, {}, {}};
  splitter.run();

  std::vector<Problem> problems;
  std::size_t total = 0;
  const auto add = [&](Problem p) {
    ++total;
    if (problems.size() < kMaxProblems) problems.push_back(std::move(p));
  };
  if (splitter.problem) {
    add(*splitter.problem);
    return to_error(problems, total);
  }
  auto& records = splitter.records;
  if (records.empty()) {
    add({"users_csv.empty",
         1,
         0,
         {},
         "the file is empty; the first row must name the columns: "
         "username,display_name,email,role"});
    return to_error(problems, total);
  }

  // Header.
  const auto& header = records.front();
  std::vector<std::optional<Column>> columns;
  std::map<Column, std::size_t> seen;
  const std::vector<std::string> known(kColumnNames.begin(), kColumnNames.end());
  for (std::size_t c = 0; c < header.fields.size(); ++c) {
    auto name = core::to_lower(core::trim(header.fields[c].text));
    for (auto& ch : name) {
      if (ch == ' ' || ch == '-') ch = '_';
    }
    std::optional<Column> column;
    for (std::size_t k = 0; k < kColumnNames.size(); ++k) {
      if (name == kColumnNames[k]) column = static_cast<Column>(k);
    }
    if (!column) {
      const auto hint = core::closest(name, known);
      add({"users_csv.unknown_column", header.line, c + 1, header.fields[c].text,
           "unknown column '" + header.fields[c].text + "'" +
               (hint.empty() ? "" : "; did you mean '" + hint + "'?") +
               " The columns are username, display_name, email and role"});
    } else if (const auto [it, fresh] = seen.emplace(*column, c); !fresh) {
      add({"users_csv.duplicate_column", header.line, c + 1, name,
           "the column '" + name + "' appears twice (also column " +
               std::to_string(it->second + 1) + "); keep one"});
    }
    columns.push_back(column);
  }
  if (!seen.contains(Column::username)) {
    add({"users_csv.missing_column",
         header.line,
         0,
         {},
         "the header has no 'username' column; the first row must name the columns, e.g. "
         "username,display_name,email,role"});
  }
  if (!problems.empty()) return to_error(problems, total);

  const auto row_count = records.size() - 1;
  if (row_count == 0) {
    add({"users_csv.empty", header.line, 0, {}, "the file has a header but no users"});
    return to_error(problems, total);
  }
  if (row_count > kUsersCsvMaxRows) {
    add({"users_csv.too_many_rows",
         records[kUsersCsvMaxRows + 1].line,
         0,
         {},
         "the file has " + std::to_string(row_count) + " users; import at most " +
             std::to_string(kUsersCsvMaxRows) + " per file"});
    return to_error(problems, total);
  }

  std::vector<UserImportRow> rows;
  rows.reserve(row_count);
  std::map<std::string, std::size_t> lines_by_username;  // lower-cased → line
  for (std::size_t r = 1; r < records.size(); ++r) {
    auto& record = records[r];
    if (record.fields.size() != columns.size()) {
      add({"users_csv.wrong_field_count",
           record.line,
           0,
           {},
           "the row has " + std::to_string(record.fields.size()) + " fields but the header has " +
               std::to_string(columns.size()) +
               "; check for a missing or extra comma, or quote "
               "fields that contain commas"});
      continue;
    }
    UserImportRow row;
    row.line = record.line;
    bool ok = true;
    std::size_t username_column = 0;
    for (std::size_t c = 0; c < columns.size(); ++c) {
      auto& field = record.fields[c];
      const auto name = std::string(kColumnNames[static_cast<std::size_t>(*columns[c])]);
      core::Result<void> valid;
      switch (*columns[c]) {
        case Column::username:
          username_column = c;
          valid = check_username(field.text);
          row.username = std::move(field.text);
          break;
        case Column::display_name:
          valid = check_display_name(field.text);
          row.display_name = std::move(field.text);
          break;
        case Column::email:
          valid = check_email(field.text);
          row.email = std::move(field.text);
          break;
        case Column::role: {
          const auto role = core::to_lower(field.text);
          if (role.empty() || role == "user") {
            row.role = Role::user;
          } else if (role == "admin") {
            row.role = Role::admin;
          } else {
            add({"users_csv.bad_role", field.line, c + 1, name,
                 "unknown role '" + field.text + "'; use admin or user (empty means user)"});
            ok = false;
          }
          break;
        }
      }
      if (!valid) {
        add({import_code(valid.error()), field.line, c + 1, name, valid.error().message});
        ok = false;
      }
    }
    if (!row.username.empty()) {
      const auto key = core::to_lower(row.username);
      if (const auto [it, fresh] = lines_by_username.emplace(key, row.line); !fresh) {
        add({"users_csv.duplicate_username", row.line, username_column + 1, "username",
             "the username '" + row.username + "' already appears on line " +
                 std::to_string(it->second) + " (usernames are compared ignoring case)"});
        ok = false;
      }
    }
    if (ok) rows.push_back(std::move(row));
  }
  if (!problems.empty()) return to_error(problems, total);
  return rows;
}

}  // namespace openstation::server::auth

// Minimal statement splitter and session-command recognizer (see header).
#include "src/sql/session_sql.hpp"

#include <cctype>

namespace sluice::sql {
namespace {

bool ident_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '$'; }

// Skips whitespace and comments from `i`; returns the new index.
std::size_t skip_space(std::string_view s, std::size_t i) {
  for (;;) {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    if (s.substr(i, 2) == "--") {
      while (i < s.size() && s[i] != '\n') ++i;
    } else if (s.substr(i, 2) == "/*") {
      int depth = 1;  // PostgreSQL block comments nest
      i += 2;
      while (i < s.size() && depth > 0) {
        if (s.substr(i, 2) == "/*") ++depth, i += 2;
        else if (s.substr(i, 2) == "*/") --depth, i += 2;
        else ++i;
      }
    } else {
      return i;
    }
  }
}

std::string lower_word(std::string_view s, std::size_t& i) {
  i = skip_space(s, i);
  std::string w;
  while (i < s.size() && ident_char(s[i])) w.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(s[i++]))));
  return w;
}

}  // namespace

std::vector<std::string_view> split_statements(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t start = 0, i = 0;
  while (i < s.size()) {
    char c = s[i];
    if (c == '\'' || c == '"') {
      ++i;
      while (i < s.size()) {
        if (s[i] == c) {
          if (i + 1 < s.size() && s[i + 1] == c) i += 2;
          else break;
        } else if (c == '\'' && s[i] == '\\' && i > 0) {
          // E'' strings may escape quotes with a backslash; harmless to honour everywhere
          // for splitting since a stray backslash only delays the split point.
          i += 2;
        } else {
          ++i;
        }
      }
      ++i;
    } else if (c == '$') {
      std::size_t j = i + 1;
      while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
      if (j < s.size() && s[j] == '$' && !(i > 0 && ident_char(s[i - 1]))) {
        std::string_view tag = s.substr(i, j - i + 1);
        auto end = s.find(tag, j + 1);
        i = end == std::string_view::npos ? s.size() : end + tag.size();
      } else {
        i = j;
      }
    } else if (s.substr(i, 2) == "--" || s.substr(i, 2) == "/*") {
      i = skip_space(s, i);
    } else if (c == ';') {
      out.push_back(s.substr(start, i - start));
      start = ++i;
    } else {
      ++i;
    }
  }
  if (start < s.size()) out.push_back(s.substr(start));
  return out;
}

std::vector<SessionEffect> session_effects(std::string_view text) {
  std::vector<SessionEffect> out;
  for (auto stmt : split_statements(text)) {
    std::size_t i = 0;
    auto w = lower_word(stmt, i);
    SessionEffect e;
    if (w == "set") {
      auto w2 = lower_word(stmt, i);
      if (w2 == "session") w2 = lower_word(stmt, i);
      if (w2 != "search_path") continue;
      i = skip_space(stmt, i);
      if (i < stmt.size() && stmt[i] == '=') ++i;
      else {
        std::size_t j = i;
        if (lower_word(stmt, j) == "to") i = j;
      }
      i = skip_space(stmt, i);
      auto value = stmt.substr(i);
      while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back()))) value.remove_suffix(1);
      std::size_t k = 0;
      if (lower_word(value, k) == "default" && skip_space(value, k) == value.size()) {
        e.command = SessionCommand::ResetSearchPath;
      } else {
        e.command = SessionCommand::SetSearchPath;
        e.value = std::string(value);
      }
    } else if (w == "reset") {
      auto w2 = lower_word(stmt, i);
      if (w2 == "all") e.command = SessionCommand::ResetAll;
      else if (w2 == "search_path") e.command = SessionCommand::ResetSearchPath;
      else continue;
    } else if (w == "discard") {
      if (lower_word(stmt, i) == "all") e.command = SessionCommand::DiscardAll;
      else continue;
    } else if (w == "deallocate") {
      auto w2 = lower_word(stmt, i);
      if (w2 == "prepare") w2 = lower_word(stmt, i);
      if (w2 == "all") e.command = SessionCommand::DeallocateAll;
      else continue;
    } else {
      continue;
    }
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace sluice::sql

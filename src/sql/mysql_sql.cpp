// MySQL statement inspection (see header).
#include "src/sql/mysql_sql.hpp"

#include <cctype>
#include <charconv>
#include <vector>

namespace sluice::sql {
namespace {

struct Token {
  enum Kind { Word, Number, UserVar, Symbol } kind;
  std::string text;  // words lower-cased
};

bool word_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '$'; }

// Tokens of one text, statements separated by ";" symbols.
std::vector<Token> tokenize(std::string_view s) {
  std::vector<Token> out;
  std::size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (c == '#' || (c == '-' && s.substr(i, 3) == "-- ") || (c == '-' && s.substr(i, 2) == "--" && i + 2 == s.size())) {
      while (i < s.size() && s[i] != '\n') ++i;
    } else if (c == '/' && s.substr(i, 2) == "/*") {
      if (s.substr(i, 3) == "/*!" || s.substr(i, 3) == "/*M") {
        i += 3;  // executable comment: skip the version digits, read the body as code
        while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
      } else {
        auto end = s.find("*/", i + 2);
        i = end == std::string_view::npos ? s.size() : end + 2;
      }
    } else if (c == '*' && s.substr(i, 2) == "*/") {
      i += 2;  // end of an executable comment
    } else if (c == '\'' || c == '"' || c == '`') {
      ++i;
      while (i < s.size() && s[i] != c) i += (s[i] == '\\' && c != '`') ? 2 : 1;
      ++i;
      out.push_back({Token::Symbol, "str"});
    } else if (c == '@') {
      std::size_t j = i + 1;
      bool system = j < s.size() && s[j] == '@';
      if (system) ++j;
      std::size_t start = j;
      while (j < s.size() && (word_char(s[j]) || s[j] == '.')) ++j;
      if (!system && j > start) out.push_back({Token::UserVar, std::string(s.substr(start, j - start))});
      else if (!system && j < s.size() && (s[j] == '\'' || s[j] == '"' || s[j] == '`')) out.push_back({Token::UserVar, "quoted"});
      i = j;
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      std::size_t j = i;
      while (j < s.size() && word_char(s[j])) ++j;
      out.push_back({Token::Number, std::string(s.substr(i, j - i))});
      i = j;
    } else if (word_char(c)) {
      std::size_t j = i;
      std::string w;
      while (j < s.size() && word_char(s[j])) w.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(s[j++]))));
      out.push_back({Token::Word, std::move(w)});
      i = j;
    } else {
      if (c == ':' && i + 1 < s.size() && s[i + 1] == '=') {
        out.push_back({Token::Symbol, ":="});
        i += 2;
      } else {
        out.push_back({Token::Symbol, std::string(1, c)});
        ++i;
      }
    }
  }
  return out;
}

bool is_word(const std::vector<Token>& t, std::size_t i, std::string_view w) {
  return i < t.size() && t[i].kind == Token::Word && t[i].text == w;
}

}  // namespace

MysqlStatementInfo inspect_mysql(std::string_view text) {
  MysqlStatementInfo info;
  auto toks = tokenize(text);
  std::size_t statements = 0;
  std::size_t b = 0;
  while (b < toks.size()) {
    std::size_t e = b;
    while (e < toks.size() && !(toks[e].kind == Token::Symbol && toks[e].text == ";")) ++e;
    if (e > b) {
      ++statements;
      // KILL [HARD|SOFT] [CONNECTION | QUERY [ID]] n
      if (is_word(toks, b, "kill")) {
        std::size_t i = b + 1;
        if (is_word(toks, i, "hard") || is_word(toks, i, "soft")) ++i;
        MysqlKill k;
        if (is_word(toks, i, "query")) {
          k.query_only = true;
          ++i;
        } else if (is_word(toks, i, "connection")) {
          ++i;
        }
        if (i + 1 == e && toks[i].kind == Token::Number) {
          auto& n = toks[i].text;
          auto r = std::from_chars(n.data(), n.data() + n.size(), k.id);
          if (r.ec == std::errc() && r.ptr == n.data() + n.size()) info.kill = k;
        }
      }
      const std::string& first = toks[b].kind == Token::Word ? toks[b].text : std::string();
      if (first == "prepare") info.pins = "SQL-level PREPARE";
      if (first == "lock" && (is_word(toks, b + 1, "tables") || is_word(toks, b + 1, "table"))) info.pins = "LOCK TABLES";
      if (first == "flush" && is_word(toks, b + 1, "tables")) {
        for (std::size_t i = b; i + 1 < e; ++i)
          if (is_word(toks, i, "read") && is_word(toks, i + 1, "lock")) info.pins = "FLUSH TABLES ... WITH READ LOCK";
      }
      if (first == "handler") info.pins = "HANDLER";
      if (first == "xa") info.pins = "XA transaction";
      if (first == "create" && is_word(toks, b + 1, "temporary")) info.pins = "CREATE TEMPORARY TABLE";
      if (first == "create" && is_word(toks, b + 1, "or") && is_word(toks, b + 3, "temporary")) info.pins = "CREATE TEMPORARY TABLE";
      if (first == "set" && is_word(toks, b + 1, "transaction")) info.next_transaction_setting = true;
      for (std::size_t i = b; i < e; ++i) {
        const auto& t = toks[i];
        if (t.kind == Token::Word && (t.text == "get_lock" || t.text == "get_locks") && i + 1 < e && toks[i + 1].text == "(")
          info.pins = "GET_LOCK()";
        if (t.kind == Token::Word && t.text == "sql_calc_found_rows") info.pins = "SQL_CALC_FOUND_ROWS (FOUND_ROWS())";
        if (t.kind == Token::UserVar) {
          bool assigned = (i + 1 < e && toks[i + 1].text == ":=") || (i > b && is_word(toks, i - 1, "into")) ||
                          (i > b && (is_word(toks, i - 1, "set") || toks[i - 1].text == ",") && first == "set");
          if (assigned) info.pins = "user variable";
        }
      }
    }
    b = e + 1;
  }
  if (statements != 1) info.kill.reset();
  return info;
}

}  // namespace sluice::sql

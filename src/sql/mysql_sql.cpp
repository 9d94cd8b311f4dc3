// MySQL statement inspection (see header).
#include "src/sql/mysql_sql.hpp"

#include <cctype>
#include <charconv>
#include <vector>

#include "src/sql/lexer.hpp"

namespace sluice::sql {
namespace {

// The shared lexer's tokens as this inspection reads them: words lower-cased, strings and quoted
// identifiers as one symbol "str", @name (and @'name') user variables, ":=" one symbol.
struct Tok {
  enum Kind { Word, Number, UserVar, Symbol } kind;
  std::string text;
};

// Tokens of one text (the shared lexer's), statements separated by ";" symbols.
std::vector<Tok> tokenize(const Lexed& lexed) {
  const auto& raw = lexed.tokens;
  auto adjacent = [&](std::size_t i) {  // raw[i] starts where raw[i - 1] ends
    return i < raw.size() && raw[i].pos == raw[i - 1].pos + raw[i - 1].text.size();
  };
  std::vector<Tok> out;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    const sql::Token& t = raw[i];
    switch (t.kind) {
      case sql::Token::Word: {
        std::string w(t.text);
        for (auto& c : w) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        out.push_back({Tok::Word, std::move(w)});
        break;
      }
      case sql::Token::Number:
        out.push_back({Tok::Number, std::string(t.text)});
        break;
      case sql::Token::String:
      case sql::Token::QuotedIdent:
        out.push_back({Tok::Symbol, "str"});
        break;
      default:
        if (t.sym('@')) {
          if (adjacent(i + 1) && raw[i + 1].sym('@')) {  // @@system variable: not the client's
            i += adjacent(i + 2) && raw[i + 2].kind == sql::Token::Word ? 2 : 1;
          } else if (adjacent(i + 1) && raw[i + 1].kind == sql::Token::Word) {
            out.push_back({Tok::UserVar, std::string(raw[++i].text)});
          } else if (adjacent(i + 1) &&
                     (raw[i + 1].kind == sql::Token::String || raw[i + 1].kind == sql::Token::QuotedIdent)) {
            ++i;
            out.push_back({Tok::UserVar, "quoted"});
          }
        } else if (t.sym(':') && adjacent(i + 1) && raw[i + 1].sym('=')) {
          ++i;
          out.push_back({Tok::Symbol, ":="});
        } else {
          out.push_back({Tok::Symbol, std::string(t.text)});
        }
        break;
    }
  }
  return out;
}

bool is_word(const std::vector<Tok>& t, std::size_t i, std::string_view w) {
  return i < t.size() && t[i].kind == Tok::Word && t[i].text == w;
}

}  // namespace

MysqlStatementInfo inspect_mysql(std::string_view text) { return inspect_mysql(lex(text, Dialect::Mysql)); }

MysqlStatementInfo inspect_mysql(const Lexed& lexed) {
  MysqlStatementInfo info;
  auto toks = tokenize(lexed);
  std::size_t statements = 0;
  std::size_t b = 0;
  while (b < toks.size()) {
    std::size_t e = b;
    while (e < toks.size() && !(toks[e].kind == Tok::Symbol && toks[e].text == ";")) ++e;
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
        if (i + 1 == e && toks[i].kind == Tok::Number) {
          auto& n = toks[i].text;
          auto r = std::from_chars(n.data(), n.data() + n.size(), k.id);
          if (r.ec == std::errc() && r.ptr == n.data() + n.size()) info.kill = k;
        }
      }
      const std::string& first = toks[b].kind == Tok::Word ? toks[b].text : std::string();
      if (first == "prepare") info.pins = "SQL-level PREPARE";
      if (first == "lock" && (is_word(toks, b + 1, "tables") || is_word(toks, b + 1, "table")))
        info.pins = "LOCK TABLES";
      if (first == "flush" && is_word(toks, b + 1, "tables")) {
        for (std::size_t i = b; i + 1 < e; ++i)
          if (is_word(toks, i, "read") && is_word(toks, i + 1, "lock")) info.pins = "FLUSH TABLES ... WITH READ LOCK";
      }
      if (first == "handler") info.pins = "HANDLER";
      if (first == "xa") info.pins = "XA transaction";
      if (first == "create" && is_word(toks, b + 1, "temporary")) info.pins = "CREATE TEMPORARY TABLE";
      if (first == "create" && is_word(toks, b + 1, "or") && is_word(toks, b + 3, "temporary"))
        info.pins = "CREATE TEMPORARY TABLE";
      if (first == "set" && is_word(toks, b + 1, "transaction")) info.next_transaction_setting = true;
      for (std::size_t i = b; i < e; ++i) {
        const auto& t = toks[i];
        if (t.kind == Tok::Word && (t.text == "get_lock" || t.text == "get_locks") && i + 1 < e &&
            toks[i + 1].text == "(")
          info.pins = "GET_LOCK()";
        if (t.kind == Tok::Word && t.text == "sql_calc_found_rows") info.pins = "SQL_CALC_FOUND_ROWS (FOUND_ROWS())";
        if (t.kind == Tok::UserVar) {
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

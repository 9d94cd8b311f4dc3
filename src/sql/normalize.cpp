// Cache keys and table references (see header).
#include "src/sql/normalize.hpp"

#include <span>

#include <algorithm>
#include <unordered_set>

namespace sluice::sql {

namespace {

std::string lower(std::string_view s) { return lower_ascii(s); }

bool mysql_keyword(std::string_view w) {
  static const std::unordered_set<std::string_view> k = {
      "select", "from", "where", "and", "or", "not", "in", "is", "null", "like", "between", "order", "by",
      "group", "having", "limit", "offset", "join", "inner", "left", "right", "outer", "cross", "on", "as",
      "distinct", "union", "all", "insert", "into", "values", "value", "update", "set", "delete", "case", "when",
      "then", "else", "end", "asc", "desc", "exists", "with", "recursive", "true", "false", "for", "share", "lock",
      "mode", "straight_join", "using", "natural", "interval", "div", "mod", "xor", "regexp", "rlike", "escape",
      "binary", "collate", "show", "describe", "explain", "sql_no_cache", "sql_cache", "high_priority",
      "sql_calc_found_rows", "rollup", "window", "over", "partition", "rows", "range", "preceding", "following",
      "current", "row", "unbounded", "any", "some", "replace", "ignore", "duplicate", "key", "default", "table",
      "tables", "status", "variables", "like", "global", "session", "full", "columns", "index", "force", "use"};
  return k.count(w) != 0;
}

// The tokens without the trailing ';' (one or more).
std::span<const Token> statement_tokens(const Lexed& l) {
  std::size_t n = l.tokens.size();
  while (n > 0 && l.tokens[n - 1].sym(';')) --n;
  return {l.tokens.data(), n};
}

std::string ident(const Token& t, Dialect d) {
  if (t.kind == Token::QuotedIdent) {
    auto q = t.text;
    if (q.size() >= 2) q = q.substr(1, q.size() - 2);
    return std::string(q);
  }
  return d == Dialect::Postgres ? lower(t.text) : std::string(t.text);
}

bool is_name(const Token& t) { return t.kind == Token::Word || t.kind == Token::QuotedIdent; }

}  // namespace

std::string normalize(std::string_view text, Dialect d) { return normalize(lex(text, d)); }

std::string normalize(const Lexed& lexed) {
  const Dialect d = lexed.dialect;
  auto t = statement_tokens(lexed);
  std::string out;
  out.reserve(lexed.text.size());
  for (std::size_t i = 0; i < t.size(); ++i) {
    if (i) out.push_back(' ');
    const Token& k = t[i];
    if (k.kind == Token::Word) {
      const bool fold =
          d == Dialect::Postgres || (i + 1 < t.size() && t[i + 1].sym('(')) || mysql_keyword(FoldedWord(k.text).view());
      if (fold) append_lower_ascii(out, k.text);
      else out.append(k.text);
    } else {
      out.append(k.text);
    }
  }
  return out;
}

TableRefs tables(std::string_view text, Dialect d) { return tables(lex(text, d)); }

TableRefs tables(const Lexed& lexed) {
  const Dialect d = lexed.dialect;
  auto t = statement_tokens(lexed);
  TableRefs r;
  auto add = [&](std::string name) {
    if (std::find(r.names.begin(), r.names.end(), name) == r.names.end()) r.names.push_back(std::move(name));
  };
  // Reads one (possibly schema-qualified) table name at i; returns the index after it, or i
  // when there is none (a subquery, a function call).
  auto name_at = [&](std::size_t i, bool call_possible) -> std::size_t {
    while (i < t.size() && (t[i].is("only") || t[i].is("if") || t[i].is("not") || t[i].is("exists") ||
                            t[i].is("table") || t[i].is("low_priority") || t[i].is("ignore") || t[i].is("quick") ||
                            t[i].is("lateral")))
      ++i;
    if (i >= t.size() || !is_name(t[i])) return i;
    std::string name = ident(t[i], d);
    std::size_t j = i + 1;
    while (j + 1 < t.size() && t[j].sym('.') && is_name(t[j + 1])) {
      name += "." + ident(t[j + 1], d);
      j += 2;
    }
    if (call_possible && j < t.size() && t[j].sym('(')) return i;  // a function, not a table
    if (name == "stdin" || name == "stdout") return j;              // COPY ... FROM STDIN
    add(std::move(name));
    return j;
  };
  bool first_is_write = false;
  if (!t.empty()) {
    const FoldedWord first(t[0].text);
    const std::string_view w = first.view();
    first_is_write = !(w == "select" || w == "with" || w == "values" || w == "table" || w == "show" ||
                       w == "explain" || w == "describe" || w == "desc" || t[0].sym('('));
    if (w == "call" || w == "do" || w == "execute" || w == "handler") r.complete = false;  // bodies unknown
  }
  for (std::size_t i = 0; i < t.size(); ++i) {
    const Token& k = t[i];
    if (k.kind != Token::Word) continue;
    if (k.is("from") || k.is("join") || k.is("update") || k.is("into") || k.is("truncate") || k.is("copy") ||
        (k.is("table") && i > 0 && (t[i - 1].is("alter") || t[i - 1].is("drop") || t[i - 1].is("create") ||
                                    t[i - 1].is("temporary") || t[i - 1].is("truncate") || t[i - 1].is("lock") ||
                                    t[i - 1].is("rename") || t[i - 1].is("analyze") || t[i - 1].is("optimize"))) ||
        (k.is("table") && i == 0) || (k.is("on") && t.size() > 1 && t[0].is("create") && t[1].is("index")) ||
        (k.is("on") && t.size() > 2 && t[0].is("create") && t[2].is("index"))) {
      std::size_t j = name_at(i + 1, k.is("from") || k.is("join"));
      // FROM a, b / FROM a x, b y: more tables after commas (aliases skipped).
      while (k.is("from") && j < t.size()) {
        std::size_t m = j;
        if (m < t.size() && t[m].is("as")) ++m;
        if (m < t.size() && t[m].kind == Token::Word && !t[m].sym(',') &&
            !(t[m].is("where") || t[m].is("join") || t[m].is("left") || t[m].is("right") || t[m].is("inner") ||
              t[m].is("cross") || t[m].is("full") || t[m].is("natural") || t[m].is("on") || t[m].is("group") ||
              t[m].is("order") || t[m].is("limit") || t[m].is("union") || t[m].is("for") || t[m].is("having") ||
              t[m].is("window") || t[m].is("using") || t[m].is("straight_join") || t[m].is("lock")))
          ++m;
        if (m < t.size() && t[m].sym(',')) {
          std::size_t n = name_at(m + 1, true);
          if (n == m + 1) break;
          j = n;
        } else {
          break;
        }
      }
    }
  }
  if (first_is_write && r.names.empty()) r.complete = false;
  return r;
}

}  // namespace sluice::sql

// Fingerprints and verbs (fingerprint.hpp).
#include "src/sql/fingerprint.hpp"

#include <string_view>

namespace sluice::sql {
namespace {

std::string lower(std::string_view s) { return lower_ascii(s); }

bool literal(const Token& t) {
  return t.kind == Token::String || t.kind == Token::Number || t.kind == Token::Param ||
         (t.kind == Token::Word && (t.is("null") || t.is("true") || t.is("false")));
}

}  // namespace

std::string fingerprint(const Lexed& lexed) {
  const auto& toks = lexed.tokens;
  std::size_t n = toks.size();
  while (n > 0 && toks[n - 1].sym(';')) --n;
  // Pieces: literals become "?", a list of them "?, ...".
  std::vector<std::string> p;
  p.reserve(n);
  // Per piece: a symbol written right after the previous symbol ("<=", "::", "||") is joined to it.
  std::vector<char> joined;
  joined.reserve(n);
  std::vector<char> symbol;
  symbol.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    const Token& t = toks[i];
    bool lit = literal(t);
    // A minus sign where no operand precedes it makes a negative literal.
    if (!lit && t.sym('-') && i + 1 < n && toks[i + 1].kind == Token::Number &&
        (p.empty() || p.back() == "(" || p.back() == "," || p.back() == "=" || p.back() == "<" || p.back() == ">")) {
      ++i;
      lit = true;
    }
    if (lit) {
      if (p.size() >= 2 && p.back() == "," && p[p.size() - 2] == "?") {
        p.back() = ",";
        p.push_back("...");
        joined.push_back(0), symbol.push_back(0);
        continue;
      }
      if (p.size() >= 2 && p.back() == "," && p[p.size() - 2] == "...") {
        p.pop_back();
        joined.pop_back(), symbol.pop_back();
        continue;
      }
      p.push_back("?");
      joined.push_back(0), symbol.push_back(0);
      continue;
    }
    bool sym = t.kind == Token::Symbol;
    bool after_symbol = sym && i > 0 && toks[i - 1].kind == Token::Symbol &&
                        toks[i - 1].pos + toks[i - 1].text.size() == t.pos && !symbol.empty() && symbol.back();
    p.push_back(t.kind == Token::Word ? lower(t.text) : std::string(t.text));
    joined.push_back(after_symbol && t.text != "(" && t.text != ")" && t.text != "," && t.text != ";" &&
                     p[p.size() - 2] != "(" && p[p.size() - 2] != ")" && p[p.size() - 2] != ",");
    symbol.push_back(sym);
  }
  std::string out;
  out.reserve(lexed.text.size());
  for (std::size_t i = 0; i < p.size(); ++i) {
    const std::string& x = p[i];
    // "(" sticks to a name (a call: "count(") but not to an operator ("/ (").
    bool tight = out.empty() || x == ")" || x == "," || x == ";" || x == "." ||
                 (x == "(" && !(i > 0 && symbol[i - 1] && p[i - 1] != "(" && p[i - 1] != ")" && p[i - 1] != ",")) ||
                 out.back() == '(' || out.back() == '.' || joined[i] || x == "::" || x == ":" ||
                 (i > 0 && (p[i - 1] == "::" || p[i - 1] == ":"));  // PostgreSQL casts: "a::text"
    if (!tight) out += ' ';
    out += x;
  }
  // Rows of literals: "(?, ...),(?, ...)" is one row shape however many rows there are.
  for (const std::string row : {"(?, ...),(?, ...)", "(?),(?)"})
    for (auto at = out.find(row); at != std::string::npos; at = out.find(row))
      out.replace(at, row.size(), row.substr(0, row.find(')') + 1));
  return out;
}

std::vector<std::string> verbs(const Lexed& lexed) {
  std::vector<std::string> out;
  const auto& toks = lexed.tokens;
  bool at_start = true, in_with = false;
  int depth = 0;
  for (const Token& t : toks) {
    if (t.sym(';')) {
      at_start = true, in_with = false, depth = 0;
      continue;
    }
    if (t.sym('(')) ++depth;
    if (t.sym(')')) --depth;
    if (t.kind != Token::Word) {
      at_start = false;
      continue;
    }
    if (at_start) {
      at_start = false;
      std::string v = lower(t.text);
      if (v == "with") {
        in_with = true;
        continue;
      }
      out.push_back(std::move(v));
      continue;
    }
    if (in_with && depth == 0 &&
        (t.is("select") || t.is("insert") || t.is("update") || t.is("delete") || t.is("merge"))) {
      out.push_back(lower(t.text));
      in_with = false;
    }
  }
  return out;
}

const char* verb_kind(const std::string& v) {
  for (const char* w : {"create", "alter", "drop", "truncate", "rename", "comment"})
    if (v == w) return "ddl";
  for (const char* w : {"insert", "update", "delete", "merge", "replace", "copy", "load", "call"})
    if (v == w) return "dml";
  for (const char* w : {"grant", "revoke"})
    if (v == w) return "dcl";
  for (const char* w : {"select", "values", "table", "show", "explain", "describe", "desc"})
    if (v == w) return "read";
  return "other";
}

}  // namespace sluice::sql

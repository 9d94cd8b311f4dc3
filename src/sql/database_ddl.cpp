// See database_ddl.hpp. Grammar (PostgreSQL 15 reference, CREATE/DROP/ALTER DATABASE):
//   CREATE DATABASE name [ [ WITH ] option [=] value ... ]   (option TEMPLATE names the template)
//   DROP DATABASE [ IF EXISTS ] name [ [ WITH ] ( FORCE ) ]
//   ALTER DATABASE name RENAME TO new_name
#include "src/sql/database_ddl.hpp"

#include "src/sql/lexer.hpp"
#include "src/sql/session_sql.hpp"

namespace sluice::sql {

namespace {

// An identifier as the server resolves it: unquoted words fold to lower case; "" quoted ones
// keep their case, with "" inside standing for one quote.
bool identifier(const Token& t, std::string& out) {
  out.clear();
  if (t.kind == Token::Word) {
    for (char c : t.text) out.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
    return true;
  }
  if (t.kind == Token::QuotedIdent && t.text.size() >= 2 && t.text.front() == '"') {
    std::string_view in = t.text.substr(1, t.text.size() - 2);
    for (std::size_t i = 0; i < in.size(); ++i) {
      out.push_back(in[i]);
      if (in[i] == '"' && i + 1 < in.size() && in[i + 1] == '"') ++i;
    }
    return true;
  }
  if (t.kind == Token::String && t.text.size() >= 2 && t.text.front() == '\'') {  // TEMPLATE = 'x'
    out.assign(t.text.substr(1, t.text.size() - 2));
    return true;
  }
  return false;
}

void one_statement(std::string_view stmt, std::vector<std::string>& out) {
  Lexer lx(stmt, Dialect::Postgres);
  Token verb = lx.next();
  if (!verb.is("create") && !verb.is("drop") && !verb.is("alter")) return;
  if (!lx.next().is("database")) return;
  Token t = lx.next();
  std::string name;
  if (verb.is("drop")) {
    if (t.is("if")) {
      if (!lx.next().is("exists")) return;
      t = lx.next();
    }
    if (identifier(t, name)) out.push_back(name);
    return;
  }
  if (!identifier(t, name)) return;
  if (verb.is("alter")) {
    if (lx.next().is("rename")) out.push_back(name);
    return;
  }
  std::string templ = "template1";
  for (t = lx.next(); t.kind != Token::End; t = lx.next()) {
    if (!t.is("template")) continue;
    t = lx.next();
    if (t.sym('=')) t = lx.next();
    std::string v;
    if (identifier(t, v) && !t.is("default")) templ = v;
  }
  out.push_back(templ);
}

}  // namespace

std::vector<std::string> databases_needing_exclusive_use(std::string_view text) {
  std::vector<std::string> out;
  for (auto stmt : split_statements(text)) one_statement(stmt, out);
  return out;
}

}  // namespace sluice::sql

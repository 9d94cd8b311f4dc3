// Statement splitter and session-command recognizer on the shared lexer (see header).
#include "src/sql/session_sql.hpp"

#include <cctype>
#include <optional>

#include "src/sql/lexer.hpp"

namespace sluice::sql {

std::vector<std::string_view> split_statements(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  Lexer lx(s, Dialect::Postgres);
  for (Token t = lx.next(); t.kind != Token::End; t = lx.next()) {
    if (!t.sym(';')) continue;
    out.push_back(s.substr(start, t.pos - start));
    start = t.pos + 1;
  }
  if (start < s.size()) out.push_back(s.substr(start));
  return out;
}

bool is_reported_param(std::string_view n) {
  return n == "client_encoding" || n == "datestyle" || n == "timezone" || n == "intervalstyle" ||
         n == "standard_conforming_strings" || n == "application_name" || n == "default_transaction_read_only" ||
         n == "integer_datetimes" || n == "is_superuser" || n == "session_authorization" || n == "server_encoding" ||
         n == "server_version" || n == "in_hot_standby" || n == "scram_iterations";
}

namespace {

std::string lower(std::string_view s) { return lower_ascii(s); }

// A savepoint's name as the server keys it: unquoted names fold to lower case, quoted ones keep
// theirs (the quotes and doubled quotes removed).
std::optional<std::string> savepoint_name(const Token& t) {
  if (t.kind == Token::Word) return lower(t.text);
  if (t.kind == Token::QuotedIdent && t.text.size() >= 2) {
    std::string out;
    for (std::size_t i = 1; i + 1 < t.text.size(); ++i) {
      out.push_back(t.text[i]);
      if (t.text[i] == '"' && i + 2 < t.text.size() && t.text[i + 1] == '"') ++i;
    }
    return out;
  }
  return std::nullopt;
}

// The rest of the statement from `t` on, as written, trimmed.
std::string_view rest_from(std::string_view stmt, const Token& t) {
  auto v = stmt.substr(t.pos);
  while (!v.empty() && std::isspace(static_cast<unsigned char>(v.back()))) v.remove_suffix(1);
  return v;
}

// A string literal's contents ('...' with '' for a quote), or false for anything else.
bool string_literal(const Token& t, std::string& out) {
  if (t.kind != Token::String || t.text.size() < 2 || t.text.front() != '\'') return false;
  out.clear();
  auto in = t.text.substr(1, t.text.size() - 2);
  for (std::size_t i = 0; i < in.size(); ++i) {
    out.push_back(in[i]);
    if (in[i] == '\'' && i + 1 < in.size() && in[i + 1] == '\'') ++i;
  }
  return true;
}

// SET [SESSION] ...: `t` is the word after SET (and SESSION).
void set_statement(std::string_view stmt, Lexer& lx, Token t, std::vector<SessionEffect>& out) {
  SessionEffect e;
  if (t.is("authorization")) {
    out.push_back({SessionCommand::Pin, "SET SESSION AUTHORIZATION", ""});
    return;
  }
  if (t.is("characteristics")) {
    out.push_back({SessionCommand::Untracked, "SET SESSION CHARACTERISTICS", ""});
    return;
  }
  if (t.is("transaction") || t.is("constraints") || t.is("time") || t.is("names")) return;  // tx-level or reported
  if (t.is("role")) {
    Token v = lx.next();
    if (v.kind == Token::End) return;
    if (v.is("none") || v.is("default")) out.push_back({SessionCommand::ResetParam, "", "role"});
    else out.push_back({SessionCommand::SetParam, std::string(rest_from(stmt, v)), "role"});
    return;
  }
  if (t.kind != Token::Word && t.kind != Token::QuotedIdent) return;
  std::string name = lower(t.text);
  Token v = lx.next();
  while (v.sym('.')) {  // a custom parameter: prefix.name
    Token part = lx.next();
    name += "." + lower(part.text);
    v = lx.next();
  }
  if (name == "search_path") return;  // SetSearchPath, recognized by the caller
  if (v.is("from")) {
    out.push_back({SessionCommand::Untracked, "SET ... FROM CURRENT", ""});
    return;
  }
  if (!v.is("to") && !v.sym('=')) return;
  if (is_reported_param(name)) return;  // followed through ParameterStatus
  v = lx.next();
  if (v.kind == Token::End) return;
  if (v.is("default")) out.push_back({SessionCommand::ResetParam, "", name});
  else out.push_back({SessionCommand::SetParam, std::string(rest_from(stmt, v)), name});
}

// Any other statement: function calls and clauses that change the session.
void scan_calls(Lexer& lx, Token t, std::vector<SessionEffect>& out) {
  Token prev;
  for (; t.kind != Token::End; prev = t, t = lx.next()) {
    if (t.kind != Token::Word) continue;
    if (t.is("pg_advisory_lock") || t.is("pg_try_advisory_lock") || t.is("pg_advisory_lock_shared") ||
        t.is("pg_try_advisory_lock_shared")) {
      out.push_back({SessionCommand::Pin, "advisory lock", ""});
    } else if (t.is("pg_advisory_unlock") || t.is("pg_advisory_unlock_shared") || t.is("pg_advisory_unlock_all")) {
      out.push_back({SessionCommand::MayUnpin, "", ""});
    } else if ((t.is("temp") || t.is("temporary")) && prev.is("into")) {
      out.push_back({SessionCommand::Pin, "temporary table", ""});
    } else if (t.is("pg_notify")) {
      out.push_back({SessionCommand::Notify, "", ""});
    } else if (t.is("set_config")) {
      // set_config('name', 'value', false): carried; is_local true: nothing; anything else: untracked.
      Token a = lx.next(), n = lx.next(), c1 = lx.next(), v = lx.next(), c2 = lx.next(), local = lx.next(),
            close = lx.next();
      std::string name, value;
      if (!a.sym('(') || !string_literal(n, name) || !c1.sym(',') || !string_literal(v, value) || !c2.sym(',') ||
          !close.sym(')')) {
        out.push_back({SessionCommand::Untracked, "set_config of an expression", ""});
      } else if (local.is("false")) {
        name = lower(name);
        if (name == "search_path") out.push_back({SessionCommand::SetSearchPath, value, ""});
        else if (!is_reported_param(name)) out.push_back({SessionCommand::SetParam, std::string(v.text), name});
      } else if (!local.is("true")) {
        out.push_back({SessionCommand::Untracked, "set_config of an expression", ""});
      }
      t = close;
    }
  }
}

}  // namespace

std::string channel_name(std::string name) {
  constexpr std::size_t kMax = 63;
  if (name.size() <= kMax) return name;
  std::size_t cut = kMax;
  while (cut > 0 && (static_cast<unsigned char>(name[cut]) & 0xC0) == 0x80) --cut;  // inside a UTF-8 character
  name.resize(cut);
  return name;
}

std::vector<SessionEffect> session_effects(std::string_view text) {
  std::vector<SessionEffect> out;
  for (auto stmt : split_statements(text)) {
    Lexer lx(stmt, Dialect::Postgres);
    Token t = lx.next();
    if (t.is("set")) {
      Token t2 = lx.next();
      if (t2.is("local")) continue;
      if (t2.is("session")) t2 = lx.next();
      if (t2.is("search_path")) {
        Token v = lx.next();
        if (v.sym('=') || v.is("to")) v = lx.next();
        if (v.kind == Token::End) continue;
        SessionEffect e;
        if (v.is("default") && lx.next().kind == Token::End) {
          e.command = SessionCommand::ResetSearchPath;
        } else {
          e.command = SessionCommand::SetSearchPath;
          e.value = std::string(rest_from(stmt, v));
        }
        out.push_back(std::move(e));
        continue;
      }
      set_statement(stmt, lx, t2, out);
    } else if (t.is("reset")) {
      Token t2 = lx.next();
      if (t2.is("all")) out.push_back({SessionCommand::ResetAll, "", ""});
      else if (t2.is("search_path")) out.push_back({SessionCommand::ResetSearchPath, "", ""});
      else if (t2.is("session")) out.push_back({SessionCommand::MayUnpin, "", ""});  // SESSION AUTHORIZATION
      else if (t2.is("role")) out.push_back({SessionCommand::ResetParam, "", "role"});
      else if (t2.kind == Token::Word || t2.kind == Token::QuotedIdent) {
        std::string name = lower(t2.text);
        for (Token p = lx.next(); p.sym('.'); p = lx.next()) name += "." + lower(lx.next().text);
        if (!is_reported_param(name)) out.push_back({SessionCommand::ResetParam, "", name});
      }
    } else if (t.is("discard")) {
      Token t2 = lx.next();
      out.push_back({t2.is("all") ? SessionCommand::DiscardAll : SessionCommand::MayUnpin, "", ""});
    } else if (t.is("deallocate")) {
      Token t2 = lx.next();
      if (t2.is("prepare")) t2 = lx.next();
      out.push_back({t2.is("all") ? SessionCommand::DeallocateAll : SessionCommand::MayUnpin, "", ""});
    } else if (t.is("listen")) {
      if (auto name = savepoint_name(lx.next())) out.push_back({SessionCommand::Listen, "", channel_name(*name)});
    } else if (t.is("unlisten")) {
      Token n = lx.next();
      if (n.sym('*')) out.push_back({SessionCommand::Unlisten, "", "*"});
      else if (auto name = savepoint_name(n)) out.push_back({SessionCommand::Unlisten, "", channel_name(*name)});
    } else if (t.is("notify")) {
      out.push_back({SessionCommand::Notify, "", ""});
    } else if (t.is("close") || t.is("drop")) {
      out.push_back({SessionCommand::MayUnpin, "", ""});
    } else if (t.is("prepare")) {
      if (!lx.next().is("transaction")) out.push_back({SessionCommand::Pin, "SQL PREPARE", ""});
    } else if (t.is("declare")) {
      Token p;
      for (Token x = lx.next(); x.kind != Token::End && !x.is("for"); p = x, x = lx.next())
        if (x.is("hold") && p.is("with")) out.push_back({SessionCommand::Pin, "WITH HOLD cursor", ""});
    } else if (t.is("create")) {
      for (Token x = lx.next(); x.kind != Token::End; x = lx.next()) {
        if (x.is("temp") || x.is("temporary") || x.is("pg_temp")) {
          out.push_back({SessionCommand::Pin, "temporary table", ""});
          break;
        }
        if (x.is("as") || x.sym('(')) break;  // past the object's name
      }
    } else if (t.is("do")) {
      out.push_back({SessionCommand::Untracked, "DO block", ""});
    } else if (t.is("begin") || t.is("start")) {
      out.push_back({SessionCommand::Begin, "", ""});
    } else if (t.is("commit") || t.is("end")) {
      out.push_back({SessionCommand::Commit, "", ""});
    } else if (t.is("rollback") || t.is("abort")) {
      Token t2 = lx.next();
      if (t2.is("work") || t2.is("transaction")) t2 = lx.next();
      if (t2.is("prepared")) continue;
      if (t2.is("to")) {
        Token n = lx.next();
        if (n.is("savepoint")) n = lx.next();
        if (auto name = savepoint_name(n)) out.push_back({SessionCommand::RollbackTo, "", *name});
        continue;
      }
      if (t2.is("and") && lx.next().is("chain")) continue;  // a new transaction goes on
      out.push_back({SessionCommand::Rollback, "", ""});
    } else if (t.is("savepoint")) {
      if (auto name = savepoint_name(lx.next())) out.push_back({SessionCommand::Savepoint, "", *name});
    } else if (t.is("release")) {
      Token n = lx.next();
      if (n.is("savepoint")) n = lx.next();
      if (auto name = savepoint_name(n)) out.push_back({SessionCommand::Release, "", *name});
    } else {
      scan_calls(lx, t, out);
    }
  }
  return out;
}

}  // namespace sluice::sql

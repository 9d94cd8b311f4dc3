// Routing classification (see header).
#include "src/sql/classify.hpp"

#include <algorithm>
#include <cctype>
#include <span>
#include <unordered_set>

namespace sluice::sql {

namespace {

std::string lower(std::string_view s) { return lower_ascii(s); }

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

Classification classify_one(std::span<const Token> t, Dialect d, const std::vector<std::string>& extra) {
  Classification c;
  auto word = [&](std::size_t i, std::string_view w) { return i < t.size() && t[i].is(w); };
  auto has_read_only = [&](std::size_t from) {
    for (std::size_t i = from; i + 1 < t.size(); ++i)
      if (t[i].is("read") && t[i + 1].is("only")) return true;
    return false;
  };
  const Token& first = t[0];
  if (first.is("begin") || first.is("start")) {
    if (first.is("start") && !word(1, "transaction")) return c;  // START SLAVE etc.
    c.kind = StatementKind::Begin;
    c.read_only = has_read_only(1);
    return c;
  }
  if (first.is("commit") || first.is("end")) {
    c.kind = StatementKind::Commit;
    return c;
  }
  if (first.is("rollback") || first.is("abort")) {
    for (std::size_t i = 1; i < t.size(); ++i)
      if (t[i].is("to")) return c;  // ROLLBACK TO SAVEPOINT: the transaction goes on
    c.kind = StatementKind::Rollback;
    return c;
  }
  if (first.is("set")) {
    std::size_t i = 1;
    if (word(i, "session") && word(i + 1, "characteristics")) {  // PostgreSQL session default
      c.kind = StatementKind::Session;
      return c;
    }
    if (word(i, "transaction") || (word(i, "session") && word(i + 1, "transaction")) ||
        (word(i, "local") && word(i + 1, "transaction"))) {
      c.kind = StatementKind::SetTransaction;
      c.read_only = has_read_only(i);
      return c;
    }
    c.kind = StatementKind::Session;
    c.reason = "SET";
    return c;
  }
  if (first.is("use") || first.is("reset") || first.is("discard")) {
    c.kind = StatementKind::Session;
    return c;
  }

  // Candidate reads.
  std::size_t body = 0;
  if (first.is("explain") || first.is("describe") || first.is("desc")) {
    for (std::size_t i = 1; i < t.size(); ++i)
      if (t[i].is("analyze") || t[i].is("analyse")) {
        c.reason = "EXPLAIN ANALYZE executes the statement";
        return c;
      }
    if (first.is("explain")) {
      // What is explained must itself be a read.
      std::size_t i = 1;
      if (i < t.size() && t[i].sym('(')) {  // EXPLAIN (options)
        int depth = 0;
        for (; i < t.size(); ++i) {
          if (t[i].sym('(')) ++depth;
          if (t[i].sym(')') && --depth == 0) break;
        }
        ++i;
      }
      while (i < t.size() && t[i].kind == Token::Word &&
             (t[i].is("verbose") || t[i].is("extended") || t[i].is("partitions") || t[i].is("format") ||
              t[i].is("costs") || t[i].is("buffers")))
        ++i;
      if (i < t.size() && t[i].sym('=')) i += 2;  // FORMAT=JSON
      if (i < t.size() && (t[i].is("insert") || t[i].is("update") || t[i].is("delete") || t[i].is("replace") ||
                           t[i].is("merge"))) {
        c.reason = "EXPLAIN of a write";
        return c;
      }
    }
    body = 1;
  } else if (first.is("show")) {
    if (word(1, "warnings") || word(1, "errors") || word(1, "count") || word(1, "master") || word(1, "binary") ||
        word(1, "binlog") || word(1, "slave") || word(1, "replica") || word(1, "processlist") ||
        (word(1, "full") && word(2, "processlist")) || word(1, "session") || word(1, "profile") || word(1, "profiles")) {
      c.reason = "SHOW of session or server-specific state";
      return c;
    }
    body = 1;
  } else if (!(first.is("select") || first.is("with") || first.is("values") || first.is("table") || first.sym('('))) {
    return c;  // everything else writes
  }

  for (std::size_t i = body; i < t.size(); ++i) {
    const Token& k = t[i];
    if (k.kind == Token::Word) {
      if (k.is("for") && (word(i + 1, "update") || word(i + 1, "share") || word(i + 1, "no") ||
                          (word(i + 1, "key") && word(i + 2, "share")))) {
        c.reason = "locking clause";
        return c;
      }
      if (k.is("lock") && word(i + 1, "in")) {
        c.reason = "LOCK IN SHARE MODE";
        return c;
      }
      if (k.is("into")) {
        c.reason = "INTO";
        return c;
      }
      if (k.is("insert") || k.is("update") || k.is("delete") || k.is("merge")) {
        c.reason = "data-modifying statement inside";
        return c;
      }
      if (k.is("next") && word(i + 1, "value") && word(i + 2, "for")) {
        c.reason = "sequence";
        return c;
      }
      if (i + 1 < t.size() && t[i + 1].sym('(') && k.text.size() < 64) {
        char buf[64];
        for (std::size_t j = 0; j < k.text.size(); ++j) buf[j] = static_cast<char>(std::tolower(static_cast<unsigned char>(k.text[j])));
        std::string_view name(buf, k.text.size());
        if (is_write_function(name, d)) {
          c.reason = "function that writes, locks or reads session state";
          return c;
        }
        if (std::find(extra.begin(), extra.end(), name) != extra.end()) {
          c.reason = "one of the cluster's write_functions";
          c.opaque_write = true;
          return c;
        }
      } else if (i + 1 < t.size() && t[i + 1].sym('(')) {
        c.reason = "function name too long to check";
        return c;
      }
    } else if (k.kind == Token::QuotedIdent && i + 1 < t.size() && t[i + 1].sym('(')) {
      auto q = k.text;
      auto name = lower(q.substr(1, q.size() >= 2 ? q.size() - 2 : 0));
      if (is_write_function(name, d)) {
        c.reason = "function that writes, locks or reads session state";
        return c;
      }
      if (std::find(extra.begin(), extra.end(), name) != extra.end()) {
        c.reason = "one of the cluster's write_functions";
        c.opaque_write = true;
        return c;
      }
    } else if (k.sym(':') && i + 1 < t.size() && t[i + 1].sym('=')) {
      c.reason = "user variable assignment";
      return c;
    }
  }
  c.kind = StatementKind::Read;
  return c;
}

}  // namespace

bool is_write_function(std::string_view name, Dialect d) {
  static const std::unordered_set<std::string_view> pg = {
      "nextval", "setval", "currval", "lastval", "pg_advisory_lock", "pg_advisory_lock_shared",
      "pg_try_advisory_lock", "pg_try_advisory_lock_shared", "pg_advisory_xact_lock",
      "pg_advisory_xact_lock_shared", "pg_try_advisory_xact_lock", "pg_try_advisory_xact_lock_shared",
      "pg_advisory_unlock", "pg_advisory_unlock_shared", "pg_advisory_unlock_all", "txid_current",
      "pg_current_xact_id", "pg_notify", "set_config", "pg_switch_wal", "pg_create_restore_point",
      "lo_create", "lo_creat", "lo_import", "lo_unlink", "lo_put", "lo_from_bytea", "pg_terminate_backend",
      "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile", "dblink_exec", "pg_stat_reset",
      "pg_create_logical_replication_slot", "pg_create_physical_replication_slot", "pg_drop_replication_slot",
      "pg_replication_slot_advance", "pg_logical_slot_get_changes", "pg_current_wal_lsn",
      "pg_current_wal_insert_lsn", "pg_current_wal_flush_lsn"};
  static const std::unordered_set<std::string_view> my = {
      "get_lock", "release_lock", "release_all_locks", "is_free_lock", "is_used_lock", "last_insert_id",
      "found_rows", "row_count", "master_pos_wait", "master_gtid_wait", "source_pos_wait",
      "wait_for_executed_gtid_set", "nextval", "setval", "lastval", "connection_id"};
  return d == Dialect::Postgres ? pg.count(name) != 0 : my.count(name) != 0;
}

Classification classify(std::string_view text, Dialect d, const std::vector<std::string>& extra) {
  // Reused per thread: classification runs for every routed statement and must not allocate.
  thread_local Lexed lexed;
  lex_into(lexed, text, d);
  return classify(lexed, extra);
}

Classification classify(const Lexed& lexed, const std::vector<std::string>& extra) {
  const Dialect d = lexed.dialect;
  const auto& tokens = lexed.tokens;
  thread_local std::vector<std::pair<std::size_t, std::size_t>> ranges;  // [begin, end) per statement
  ranges.clear();
  std::size_t begin = 0;
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i].sym(';')) {
      if (i > begin) ranges.emplace_back(begin, i);
      begin = i + 1;
    }
  }
  if (tokens.size() > begin) ranges.emplace_back(begin, tokens.size());
  auto statement = [&](std::size_t k) {
    return std::span<const Token>(tokens.data() + ranges[k].first, ranges[k].second - ranges[k].first);
  };
  Classification out;
  auto hint = trim(lexed.leading_comment);
  if (hint == "sluice:primary") out.hint = Hint::Primary;
  else if (hint == "sluice:replica") out.hint = Hint::Replica;
  if (lexed.unterminated) {
    out.reason = "unterminated quote or comment";
    return out;
  }
  if (ranges.empty()) {
    out.reason = "empty";
    return out;
  }
  Hint h = out.hint;
  if (ranges.size() == 1) {
    out = classify_one(statement(0), d, extra);
    out.writes = out.kind == StatementKind::Write;
  } else if (auto first = classify_one(statement(0), d, extra); first.kind == StatementKind::Begin) {
    // "BEGIN; SET TRANSACTION READ ONLY; ..." in one text: a read-only transaction.
    out = first;
    if (!out.read_only) {
      auto second = classify_one(statement(1), d, extra);
      if (second.kind == StatementKind::SetTransaction && second.read_only) out.read_only = true;
    }
    for (std::size_t k = 1; k < ranges.size(); ++k) {  // what the transaction writes
      auto c = classify_one(statement(k), d, extra);
      out.writes = out.writes || c.kind == StatementKind::Write;
      out.opaque_write = out.opaque_write || c.opaque_write;
    }
  } else {
    bool all_reads = true;
    for (std::size_t k = 0; k < ranges.size(); ++k) {  // all of them: any may call a write function
      auto c = classify_one(statement(k), d, extra);
      if (c.read()) continue;
      all_reads = false;
      out.writes = out.writes || c.kind == StatementKind::Write;
      out.opaque_write = out.opaque_write || c.opaque_write;
    }
    out.kind = all_reads ? StatementKind::Read : StatementKind::Write;
    if (!all_reads) out.reason = "several statements, not all reads";
  }
  out.hint = h;
  return out;
}

}  // namespace sluice::sql

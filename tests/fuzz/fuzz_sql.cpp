// libFuzzer target: the SQL lexer, classifier, normalizer, table extraction, statement
// splitting, fingerprints and verbs (the firewall), session-effect, database-DDL and MySQL statement inspection, and
// the cache's volatility check, in both dialects.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "src/cache/policy.hpp"
#include "src/sql/classify.hpp"
#include "src/sql/database_ddl.hpp"
#include "src/sql/fingerprint.hpp"
#include "src/sql/lexer.hpp"
#include "src/sql/mysql_sql.hpp"
#include "src/sql/normalize.hpp"
#include "src/sql/session_sql.hpp"

using namespace sluice;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  for (auto d : {sql::Dialect::Postgres, sql::Dialect::Mysql}) {
    sql::Lexer lex(text, d);
    for (int i = 0; i < 100000; ++i)
      if (lex.next().kind == sql::Token::End) break;
    sql::classify(text, d, {"my_write_fn"});
    sql::normalize(text, d);
    sql::tables(text, d);
    auto lexed = sql::lex(text, d);
    sql::fingerprint(lexed);  // the firewall's key
    for (auto& v : sql::verbs(lexed)) sql::verb_kind(v);
    cache::uncacheable(text, d);
  }
  sql::split_statements(text);
  sql::session_effects(text);
  sql::databases_needing_exclusive_use(text);
  sql::inspect_mysql(text);
  return 0;
}

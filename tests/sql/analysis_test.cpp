// sql::Analysis: one lexing per statement whatever the number of stages that look at it, tokens
// that outlive the buffer the text came from, and memoized answers that are still the answers
// for the text and the write functions asked.
#include <doctest/doctest.h>

#include "src/sql/analysis.hpp"

using namespace sluice::sql;

TEST_CASE("the same text is lexed once for every stage, a different one again") {
  Analysis a;
  a.of("SELECT * FROM t WHERE id = 1", Dialect::Postgres);
  CHECK(a.classification().read());
  a.of("SELECT * FROM t WHERE id = 1", Dialect::Postgres);  // the next stage, same statement
  CHECK(a.tables().names == std::vector<std::string>{"t"});
  CHECK(a.lexings() == 1);
  a.of("UPDATE u SET x = 1", Dialect::Postgres);
  CHECK(a.lexings() == 2);
  CHECK(a.classification().kind == StatementKind::Write);
  CHECK(a.tables().names == std::vector<std::string>{"u"});
  a.of("UPDATE u SET x = 1", Dialect::Mysql);  // another dialect lexes differently
  CHECK(a.lexings() == 3);
}

TEST_CASE("the tokens outlive the buffer the text came from") {
  Analysis a;
  std::string buffer = "SELECT a FROM \"Quoted\" JOIN b USING (id)";
  a.of(buffer, Dialect::Postgres);
  buffer.assign(buffer.size(), 'x');  // the network buffer is reused for the next message
  buffer.shrink_to_fit();
  CHECK(a.lexed().tokens.front().is("select"));
  CHECK(a.tables().names == std::vector<std::string>{"Quoted", "b"});
  CHECK(a.classification().read());
}

TEST_CASE("the classification follows the write functions asked for") {
  Analysis a;
  a.of("SELECT audit_touch(1)", Dialect::Postgres);
  CHECK(a.classification().read());
  CHECK(a.classification({"audit_touch"}).kind == StatementKind::Write);
  CHECK(a.classification().read());  // the cache's view, without the list, again
  CHECK(a.lexings() == 1);
}

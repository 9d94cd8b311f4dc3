// MySQL statement inspection: KILL, pinning statements, comments and quotes.
#include <doctest/doctest.h>

#include "src/sql/mysql_sql.hpp"

using sluice::sql::inspect_mysql;

TEST_CASE("KILL forms") {
  auto k = inspect_mysql("KILL QUERY 42");
  REQUIRE(k.kill);
  CHECK(k.kill->query_only);
  CHECK(k.kill->id == 42);
  k = inspect_mysql("kill 7");
  REQUIRE(k.kill);
  CHECK_FALSE(k.kill->query_only);
  k = inspect_mysql(" /* x */ KILL CONNECTION 9 ");
  REQUIRE(k.kill);
  CHECK(k.kill->id == 9);
  CHECK(inspect_mysql("KILL HARD QUERY 3").kill);
  CHECK_FALSE(inspect_mysql("KILL USER app").kill);
  CHECK_FALSE(inspect_mysql("KILL 1; SELECT 1").kill);
  CHECK_FALSE(inspect_mysql("SELECT 'KILL 1'").kill);
}

TEST_CASE("statements that pin, and look-alikes that do not") {
  CHECK(inspect_mysql("SET @x = 1").pins);
  CHECK(inspect_mysql("SELECT @x := 5").pins);
  CHECK(inspect_mysql("SELECT id INTO @v FROM t").pins);
  CHECK(inspect_mysql("set @a=1, @b=2").pins);
  CHECK(inspect_mysql("SELECT GET_LOCK('l', 10)").pins);
  CHECK(inspect_mysql("LOCK TABLES t WRITE").pins);
  CHECK(inspect_mysql("CREATE TEMPORARY TABLE tt (a int)").pins);
  CHECK(inspect_mysql("PREPARE s FROM 'SELECT 1'").pins);
  CHECK(inspect_mysql("SELECT SQL_CALC_FOUND_ROWS * FROM t LIMIT 1").pins);
  CHECK(inspect_mysql("FLUSH TABLES WITH READ LOCK").pins);
  CHECK(inspect_mysql("SELECT 1; SET @x = 2").pins);
  CHECK(inspect_mysql("/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE */").pins);

  CHECK_FALSE(inspect_mysql("SELECT @x").pins);
  CHECK_FALSE(inspect_mysql("SELECT @@session.autocommit").pins);
  CHECK_FALSE(inspect_mysql("SET SESSION sql_mode = 'ANSI'").pins);
  CHECK_FALSE(inspect_mysql("SELECT 'SET @x = 1', \"GET_LOCK(\"").pins);
  CHECK_FALSE(inspect_mysql("SELECT 1 -- SET @x = 1").pins);
  CHECK_FALSE(inspect_mysql("SELECT 1 # LOCK TABLES t").pins);
  CHECK_FALSE(inspect_mysql("SELECT 'it''s', 'a\\'b' FROM t WHERE c = 'GET_LOCK('").pins);
  CHECK_FALSE(inspect_mysql("SELECT get_lock_count FROM t").pins);
}

TEST_CASE("SET TRANSACTION applies to the next transaction only") {
  CHECK(inspect_mysql("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE").next_transaction_setting);
  CHECK_FALSE(inspect_mysql("SET SESSION TRANSACTION ISOLATION LEVEL SERIALIZABLE").next_transaction_setting);
}

TEST_CASE("user variables as the shared lexer sees them: quoted names, := without spaces, system variables") {
  CHECK(inspect_mysql("SET @'my var' = 1").pins);
  CHECK(inspect_mysql("SELECT @`v`:=1").pins);
  CHECK(inspect_mysql("SELECT @v:=1").pins);
  CHECK(inspect_mysql("SELECT 1 INTO @`v`").pins);
  CHECK_FALSE(inspect_mysql("SELECT @@global.max_connections, @@SESSION.sql_mode").pins);
  CHECK_FALSE(inspect_mysql("SELECT `@x` FROM t").pins);
  CHECK_FALSE(inspect_mysql("SELECT 1 /* SET @x = 1 */").pins);
  CHECK(inspect_mysql("SELECT 1 /*!50000 , @x := 2 */").pins);
}

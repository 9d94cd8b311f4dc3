// Which databases a statement needs free of other sessions (CREATE/DROP/ALTER ... RENAME DATABASE).
#include <doctest/doctest.h>

#include "src/sql/database_ddl.hpp"

using sluice::sql::databases_needing_exclusive_use;
using V = std::vector<std::string>;

TEST_CASE("CREATE DATABASE needs its template, template1 by default") {
  CHECK(databases_needing_exclusive_use("CREATE DATABASE t1") == V{"template1"});
  CHECK(databases_needing_exclusive_use("create database t1 template template0") == V{"template0"});
  CHECK(databases_needing_exclusive_use("CREATE DATABASE t1 WITH OWNER = app TEMPLATE = \"MyTpl\" ENCODING 'UTF8'") ==
        V{"MyTpl"});
  CHECK(databases_needing_exclusive_use("CREATE DATABASE t1 TEMPLATE = 'tpl_x'") == V{"tpl_x"});
  CHECK(databases_needing_exclusive_use("CREATE DATABASE t1 TEMPLATE DEFAULT") == V{"template1"});
  CHECK(databases_needing_exclusive_use("/* c */ CREATE DATABASE \"x\" TEMPLATE App_Tpl") == V{"app_tpl"});
}

TEST_CASE("DROP DATABASE and ALTER DATABASE RENAME need the database itself") {
  CHECK(databases_needing_exclusive_use("DROP DATABASE t1") == V{"t1"});
  CHECK(databases_needing_exclusive_use("drop database if exists \"T\"\"1\" with (force)") == V{"T\"1"});
  CHECK(databases_needing_exclusive_use("ALTER DATABASE Old RENAME TO new") == V{"old"});
  CHECK(databases_needing_exclusive_use("ALTER DATABASE old SET work_mem = '1MB'").empty());
  CHECK(databases_needing_exclusive_use("SELECT 1; DROP DATABASE a; DROP DATABASE b") == V{"a", "b"});
}

TEST_CASE("other statements need nothing, whatever their text contains") {
  CHECK(databases_needing_exclusive_use("SELECT 'DROP DATABASE x'").empty());
  CHECK(databases_needing_exclusive_use("CREATE TABLE database (a int)").empty());
  CHECK(databases_needing_exclusive_use("DROP TABLE t").empty());
  CHECK(databases_needing_exclusive_use("").empty());
  CHECK(databases_needing_exclusive_use("DROP DATABASE").empty());
}

// Byte-level differential: the same protocol messages sent directly to PostgreSQL and through
// Sluice (session, transaction and statement pools) must bring back the same messages, byte for
// byte. The scenarios are the ones the relay treats specially: notices and warnings between rows
// (held whole in pooled modes), an error in the middle of a result, rows large and small cut
// across reads (small messages held until whole), an extended-protocol pipeline with an error and
// a Flush in the middle. Logins go through libpq; the exchange itself is raw bytes on its socket.
#include <doctest/doctest.h>
#include <libpq-fe.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "harness.hpp"

using namespace sluice::itest;

namespace {

const char* kPools = R"(
[[pools]]
database = "app_session"
server_database = "app"
cluster = "pg"
pool_mode = "session"
pool_size = 2

[[pools]]
database = "app_transaction"
server_database = "app"
cluster = "pg"
pool_mode = "transaction"
pool_size = 2

[[pools]]
database = "app_statement"
server_database = "app"
cluster = "pg"
pool_mode = "statement"
pool_size = 2
)";

void put_u32(std::string& out, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<char>((v >> s) & 0xFF));
}
std::string msg(char type, const std::string& body) {
  std::string out(1, type);
  put_u32(out, static_cast<std::uint32_t>(body.size() + 4));
  return out + body;
}
std::string cstr(const std::string& s) { return s + std::string(1, '\0'); }
std::string query(const std::string& sql) { return msg('Q', cstr(sql)); }
std::string parse(const std::string& sql) { return msg('P', cstr("") + cstr(sql) + std::string(2, '\0')); }
std::string bind() { return msg('B', cstr("") + cstr("") + std::string(6, '\0')); }
std::string describe() { return msg('D', "P" + cstr("")); }
std::string execute() { return msg('E', cstr("") + std::string(4, '\0')); }
std::string sync() { return msg('S', ""); }
std::string flush() { return msg('H', ""); }

using Messages = std::vector<std::pair<char, std::string>>;

// Writes `bytes` on the connection's socket and reads whole messages until `ready` ReadyForQuery
// have come (bounded: 10 s of silence fails the exchange).
Messages exchange(PGconn* c, const std::string& bytes, int ready) {
  int fd = PQsocket(c);
  REQUIRE(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size()));
  Messages out;
  std::string buf;
  while (ready > 0) {
    pollfd p{fd, POLLIN, 0};
    REQUIRE_MESSAGE(::poll(&p, 1, 10000) == 1, "no answer within 10 s");
    char chunk[65536];
    ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    REQUIRE(n > 0);
    buf.append(chunk, static_cast<std::size_t>(n));
    while (buf.size() >= 5) {
      std::uint32_t len = (std::uint8_t(buf[1]) << 24) | (std::uint8_t(buf[2]) << 16) | (std::uint8_t(buf[3]) << 8) |
                          std::uint8_t(buf[4]);
      if (buf.size() < len + 1) break;
      out.emplace_back(buf[0], buf.substr(5, len - 4));
      if (buf[0] == 'Z') --ready;
      buf.erase(0, len + 1);
    }
  }
  REQUIRE(buf.empty());
  return out;
}

std::string describe_difference(const Messages& a, const Messages& b) {
  for (std::size_t i = 0; i < std::max(a.size(), b.size()); ++i) {
    if (i >= a.size() || i >= b.size()) return "lengths differ at message " + std::to_string(i);
    if (a[i] != b[i])
      return "message " + std::to_string(i) + ": '" + a[i].first + "' (" + std::to_string(a[i].second.size()) +
             " bytes) against '" + b[i].first + "' (" + std::to_string(b[i].second.size()) + " bytes)";
  }
  return "";
}

struct Scenario {
  const char* name;
  std::string bytes;
  int ready;
};

std::vector<Scenario> scenarios() {
  return {
      {"notices and a warning between statements and rows",
       query("DO $$BEGIN RAISE NOTICE 'first'; RAISE WARNING 'second'; END$$; SELECT g FROM generate_series(1, 3) g; "
             "DO $$BEGIN RAISE NOTICE 'third'; END$$"),
       1},
      {"an error in the middle of a result", query("SELECT 10 / (g - 300) FROM generate_series(1, 500) g"), 1},
      {"small rows cut across reads", query("SELECT g, repeat('r', g % 700) FROM generate_series(1, 3000) g"), 1},
      {"large rows streaming", query("SELECT repeat(md5(g::text), 6000) FROM generate_series(1, 20) g"), 1},
      {"a pipeline with an error and a Flush in the middle",
       parse("SELECT 1") + bind() + describe() + execute() + flush() + sync() + parse("SELECT 1/0") + bind() +
           execute() + sync() + parse("SELECT 'after'") + bind() + describe() + execute() + flush() + sync(),
       3},
      {"a notice inside an extended-protocol execute",
       parse("SELECT g FROM generate_series(1, 2) g, LATERAL (SELECT set_config('client_min_messages', 'notice', "
             "true)) s") +
           bind() + describe() + execute() + sync(),
       1},
  };
}

}  // namespace

TEST_CASE("the same bytes come back directly and through Sluice, in every pool mode") {
  SluiceProcess s(kPools);
  Conn direct("host=" + pg_host() + " port=" + std::to_string(pg_port()) +
              " user=app password=app dbname=app sslmode=disable");
  REQUIRE_MESSAGE(direct.ok(), direct.error());
  for (const char* db : {"app_session", "app_transaction", "app_statement"}) {
    Conn via(s.conninfo("app", "app", db));
    REQUIRE_MESSAGE(via.ok(), via.error());
    for (const auto& sc : scenarios()) {
      const std::string where = std::string(db) + ": " + sc.name;
      INFO(where);
      Messages want = exchange(direct.c, sc.bytes, sc.ready);
      Messages got = exchange(via.c, sc.bytes, sc.ready);
      CHECK_MESSAGE(got == want, describe_difference(got, want));
    }
  }
}

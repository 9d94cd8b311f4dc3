// Users learned through auth_query (auth_lookup.hpp).
#include "src/frontend/postgres/auth_lookup.hpp"

#include <fmt/format.h>

#include <cstring>

#include "protocols/common/crypto.hpp"
#include "protocols/postgres/codec.hpp"
#include "protocols/postgres/scram.hpp"
#include "src/frontend/common/learned_users.hpp"
#include "src/frontend/common/pool_rules.hpp"
#include "src/observe/log.hpp"
#include "src/pool/pg_exchange.hpp"
#include "src/state/context.hpp"

namespace sluice::frontend::pg {

namespace asio = boost::asio;
namespace wire = sluice::pg;

namespace {

struct Answer {
  bool ok = false;     // the query ran
  bool found = false;  // a row came
  std::string secret;  // its first column ("" for NULL)
  bool expired = false;
  std::string error;
};

// auth_query with `user` as $1 (extended protocol: the name is a parameter, never SQL text).
asio::awaitable<Answer> run_query(pool::ServerConn& conn, const std::string& query, const std::string& user) {
  std::string out;
  wire::Builder(out).begin(wire::fe::Parse).str("").str(query).i16(0).end();
  wire::Builder(out)
      .begin(wire::fe::Bind)
      .str("")
      .str("")
      .i16(0)
      .i16(1)
      .i32(static_cast<std::int32_t>(user.size()))
      .raw(user)
      .i16(0)
      .end();
  wire::Builder(out).begin(wire::fe::Execute).str("").i32(2).end();
  wire::Builder(out).begin(wire::fe::Sync).end();
  Answer a;
  boost::system::error_code ec;
  co_await conn.channel().write(asio::buffer(out), ec);
  if (ec) {
    a.error = ec.message();
    co_return a;
  }
  bool failed = false;
  auto each = [&](const wire::Frame& f) {
    if (f.type == wire::be::ErrorResponse) {
      wire::ErrorFields ef;
      wire::parse_error_fields(f.body, ef);
      a.error = fmt::format("{} ({})", ef.message, ef.code);
      failed = true;
    } else if (f.type == wire::be::DataRow && !a.found) {
      wire::Reader r(f.body);
      int n = r.i16();
      for (int i = 0; i < n && r.ok(); ++i) {
        std::int32_t len = r.i32();
        std::string v = len < 0 ? std::string() : std::string(wire::as_sv(r.bytes(static_cast<std::size_t>(len))));
        if (i == 0) a.secret = v;
        if (i == 1) a.expired = v == "t";
      }
      a.found = r.ok();
    }
    return true;
  };
  bool read = co_await pool::read_until_ready(conn.channel(), 1, each);
  if (!read && a.error.empty()) a.error = "the connection failed during the query";
  a.ok = read && !failed;
  co_return a;
}

}  // namespace

std::shared_ptr<const pool::Credentials> mock_credentials(const std::string& user) {
  // A verifier for a password nobody has: random, and made once per process (the salt a prober
  // sees for a name it tries twice is the same, as it would be for a real role).
  static const std::string salt_key = crypto::random_bytes(32);
  auto c = std::make_shared<pool::Credentials>();
  c->user = user;
  c->client_auth = config::AuthMethod::ScramSha256;
  auto salt = crypto::hmac_sha256(salt_key, user);
  wire::ScramSecret s;
  s.iterations = wire::kScramDefaultIterations;
  s.salt = std::string(reinterpret_cast<const char*>(salt.data()), 16);
  auto junk = crypto::random_bytes(64);
  std::memcpy(s.stored_key.data(), junk.data(), 32);
  std::memcpy(s.server_key.data(), junk.data() + 32, 32);
  c->scram = std::move(s);
  return c;
}

asio::awaitable<std::shared_ptr<const pool::Credentials>> lookup_pg_user(state::Context& ctx,
                                                                         const state::Snapshot& snap,
                                                                         const std::string& user,
                                                                         const std::string& database,
                                                                         asio::any_io_executor ex) {
  const config::Config& cfg = *snap.config;
  auto& learned = learned_users(config::Protocol::Postgres);
  std::shared_ptr<const pool::Credentials> known;
  if (learned.find(user, known)) co_return known;
  auto auth = snap.credentials.find(cfg.postgres.auth_user);
  const config::Pool* pc = cfg.find_pool(config::Protocol::Postgres, database);
  if (auth == snap.credentials.end() || !pc || user.empty() || user.size() > 256) co_return nullptr;
  std::string db = !cfg.postgres.auth_dbname.empty() ? cfg.postgres.auth_dbname
                   : pc->database == "*"             ? database
                   : pc->server_database.empty()     ? pc->database
                                                     : pc->server_database;
  auto settings = state::pool_settings(snap, *pc);
  settings.mode = config::PoolMode::Transaction;
  settings.pool_size = 2;
  settings.min_pool_size = 0;
  auto pool = ctx.pools.get(*pc, cfg.clusters.at(pc->cluster).primary, auth->second, db, settings);
  auto lease = co_await pool->lease(ex, cfg.general.query_wait_timeout);
  if (!lease.conn) {
    log::warn("[postgres] auth_user {}: no server connection to look user {} up: {}", cfg.postgres.auth_user, user,
              lease.error ? lease.error->fields.message : std::string("timed out"));
    co_return nullptr;  // not remembered: the next login asks again
  }
  Answer a = co_await run_query(*lease.conn, cfg.postgres.auth_query, user);
  pool->release(std::move(lease.conn), a.ok);
  if (!a.ok) {
    log::warn("[postgres] auth_user {}: auth_query failed for user {}: {}", cfg.postgres.auth_user, user, a.error);
    co_return nullptr;
  }
  std::string secret = a.secret;
  const bool scram = secret.rfind("SCRAM-SHA-256$", 0) == 0;
  const bool md5 = secret.size() == 35 && secret.rfind("md5", 0) == 0;
  if (!a.found || a.expired || (!scram && !md5)) {
    if (a.found)
      log::info("[postgres] auth_query: role {} {}", user,
                a.expired ? "is past its VALID UNTIL" : "has no SCRAM or md5 secret");
    secret.clear();
  }
  co_return learned.remember(user, secret, [&]() -> std::shared_ptr<const pool::Credentials> {
    config::User u;
    u.name = user;
    u.password = secret;
    u.auth = scram ? config::AuthMethod::ScramSha256 : config::AuthMethod::Md5;
    try {
      return pool::make_credentials(u, "auth_query");
    } catch (const std::exception&) {
      return nullptr;  // a malformed verifier: refused
    }
  });
}

}  // namespace sluice::frontend::pg

// MySQL users learned from the server (see header).
#include "src/frontend/mysql/auth_lookup.hpp"

#include <fmt/format.h>

#include "protocols/mysql/codec.hpp"
#include "protocols/common/crypto.hpp"
#include "src/state/context.hpp"
#include "src/observe/log.hpp"
#include "src/pool/mysql_io.hpp"

namespace sluice::frontend::mysql {

namespace asio = boost::asio;

LearnedUsers& learned_users() { return frontend::learned_users(config::Protocol::Mysql); }

namespace {

// Rows of a text result set: the first column of each (NULL as ""); nullopt on ERR or a broken
// connection. The connection negotiated no DEPRECATE_EOF (auth_user's pool asks none).
asio::awaitable<std::optional<std::vector<std::string>>> first_column(pool::MysqlIo& io) {
  std::optional<std::vector<std::string>> none;
  bool read = co_await io.read();
  if (!read || io.payload().empty() || io.bytes()[0] == 0xFF) co_return none;
  my::Reader head(io.bytes());
  std::uint64_t columns = head.lenenc();
  if (!head.ok() || columns == 0 || columns > 16) co_return none;
  for (std::uint64_t i = 0; i <= columns; ++i)  // definitions and their EOF
    if (auto awaited = co_await io.read(); !awaited) co_return none;
  std::vector<std::string> rows;
  for (;;) {
    if (auto awaited = co_await io.read(); !awaited) co_return none;
    auto p = io.bytes();
    if (p.empty() || p[0] == 0xFF) co_return none;
    if (my::is_eof_like(p)) break;
    if (rows.size() >= 64) continue;  // a user has few host entries; bounded either way
    my::Reader r(p);
    bool is_null = false;
    auto len = r.lenenc_nullable(is_null);
    rows.emplace_back(is_null ? std::string_view() : r.str(static_cast<std::size_t>(len.value_or(0))));
    if (!r.ok()) co_return none;
  }
  co_return rows;
}

std::string hex_literal(const std::string& s) {
  std::string out = "X'";
  for (unsigned char c : s) out += fmt::format("{:02x}", c);
  return out + "'";
}

}  // namespace

asio::awaitable<std::shared_ptr<const pool::Credentials>> lookup_mysql_user(state::Context& ctx, const state::Snapshot& snap,
                                                                            const std::string& user,
                                                                            asio::any_io_executor ex) {
  const config::Config& cfg = *snap.config;
  std::shared_ptr<const pool::Credentials> known;
  if (learned_users().find(user, known)) co_return known;
  auto auth = snap.credentials.find(cfg.mysql.auth_user);
  const config::Pool* pc = nullptr;
  for (auto& p : cfg.pools)
    if (p.protocol == config::Protocol::Mysql) {
      pc = &p;
      break;
    }
  if (auth == snap.credentials.end() || !pc || user.empty() || user.size() > 256) co_return nullptr;
  auto settings = state::pool_settings(snap, *pc);
  settings.protocol = config::Protocol::Mysql;
  settings.mode = config::PoolMode::Transaction;
  settings.pool_size = 2;
  settings.max_prepared = 1;
  settings.mysql_charset = 45;
  auto pool = ctx.pools.get(*pc, cfg.clusters.at(pc->cluster).primary, auth->second, "", settings);
  auto lease = co_await pool->lease(ex, cfg.general.query_wait_timeout);
  if (!lease.conn) {
    log::warn("[mysql] auth_user {}: no server connection to look user {} up: {}", cfg.mysql.auth_user, user,
              lease.error ? lease.error->fields.message : std::string("timed out"));
    co_return nullptr;  // not remembered: the next login asks again
  }
  pool::MysqlIo io(lease.conn->sock, 1u << 20);
  io.set_tls(lease.conn->tls.get());
  std::string cmd;
  my::build_command(
      cmd, my::com::QUERY,
      "SELECT CONCAT(plugin, ':', authentication_string) FROM mysql.user WHERE User = " + hex_literal(user) +
          " AND plugin IN ('mysql_native_password', '', 'ed25519') AND password_expired = 'N'");
  std::optional<std::vector<std::string>> rows;
  if (auto awaited = co_await io.write(cmd, 0); awaited) rows = co_await first_column(io);
  pool->release(std::move(lease.conn), rows.has_value());
  if (!rows) {
    log::warn("[mysql] auth_user {}: could not read mysql.user for user {}: {}", cfg.mysql.auth_user, user,
              io.error().empty() ? std::string("the query failed (privileges?)") : io.error());
    co_return nullptr;
  }
  // Several host entries may carry different secrets: the first usable one is taken (the server
  // itself checks the host when Sluice logs in). Rows are "plugin:authentication_string".
  std::string secret;
  for (auto& r : *rows) {
    auto colon = r.find(':');
    if (colon == std::string::npos) continue;
    std::string_view plugin(r.data(), colon), auth(r.data() + colon + 1, r.size() - colon - 1);
    if ((plugin == "mysql_native_password" || plugin.empty()) && auth.size() == 41 && auth[0] == '*') {
      secret = r;
      break;
    }
    if (plugin == "ed25519" && auth.size() == 43) {  // base64 of the 32-byte key, unpadded
      secret = r;
      break;
    }
  }
  co_return learned_users().remember(user, secret, [&]() -> std::shared_ptr<const pool::Credentials> {
    auto colon = secret.find(':');
    std::string_view plugin(secret.data(), colon), auth(secret.data() + colon + 1, secret.size() - colon - 1);
    auto c = std::make_shared<pool::Credentials>();
    c->user = user;
    if (plugin == "ed25519") {
      auto key = crypto::base64_decode(std::string(auth) + "=");
      if (!key || key->size() != 32) return nullptr;
      c->ed25519_public = *key;
      return c;
    }
    auto stage2 = crypto::hex_decode(auth.substr(1));
    if (!stage2 || stage2->size() != 20) return nullptr;
    c->mysql_stage2 = *stage2;
    return c;
  });
}

}  // namespace sluice::frontend::mysql

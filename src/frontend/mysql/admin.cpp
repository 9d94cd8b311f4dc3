// Admin console over the MySQL protocol.
#include "src/frontend/mysql/admin.hpp"

#include <fmt/format.h>

#include <map>

#include "protocols/mysql/codec.hpp"
#include "src/admin/render.hpp"
#include "src/state/context.hpp"

namespace sluice::frontend::mysql {

namespace asio = boost::asio;
using asio::use_awaitable;
using boost::system::error_code;

constexpr std::size_t kMaxStatements = 1024;  // per console connection

asio::awaitable<void> serve_admin(asio::ip::tcp::socket& sock, pool::MysqlIo& io, state::Context& ctx, admin::Caller caller,
                                  std::uint32_t caps, std::uint32_t mariadb_caps) {
  const std::uint16_t status = my::status::AUTOCOMMIT;
  auto info = ctx.client_table.find(caller.client_id);
  auto reply_ok = [&](std::string_view msg = {}) -> asio::awaitable<bool> {
    std::string p;
    my::Ok ok;
    ok.status = status;
    ok.info = msg;
    my::build_ok(p, ok, (caps & my::cap::SESSION_TRACK) != 0);
    co_return co_await io.reply(p);
  };
  auto reply_err = [&](std::uint16_t code, std::string sqlstate, std::string msg) -> asio::awaitable<bool> {
    std::string p;
    my::build_err(p, code, sqlstate, msg);
    co_return co_await io.reply(p);
  };
  auto send_raw = [&](const std::string& out) -> asio::awaitable<bool> { co_return co_await io.write_raw(out); };
  (void)sock;
  if (auto awaited = co_await reply_ok(); !awaited) co_return;

  std::map<std::uint32_t, std::string> statements;
  std::uint32_t next_stmt = 1;
  for (;;) {
    if (info) info->set_state(observe::ClientState::Idle);
    if (auto awaited = co_await io.read(); !awaited) co_return;
    const std::string payload = io.payload();
    if (payload.empty()) co_return;
    if (info) {
      info->set_state(observe::ClientState::Active);
      info->request_time_us.store(observe::coarse_epoch_us(), std::memory_order_relaxed);
    }
    auto cmd = static_cast<std::uint8_t>(payload[0]);
    auto next_seq = static_cast<std::uint8_t>(io.seq() + 1);
    bool ok = true;
    switch (cmd) {
      case my::com::QUIT:
        co_return;
      case my::com::PING:
      case my::com::RESET_CONNECTION:
      case my::com::SET_OPTION:
        ok = co_await reply_ok();
        break;
      case my::com::INIT_DB:
        if (payload.substr(1) == "sluice") ok = co_await reply_ok();
        else ok = co_await reply_err(1044, "42000", "the admin console has only the database 'sluice'");
        break;
      case my::com::QUERY: {
        if (info) info->queries.fetch_add(1, std::memory_order_relaxed);
        auto r = co_await admin::run(ctx, payload.substr(1), caller);
        std::string out;
        admin::mysql_result(out, r, next_seq, caps, false, status, mariadb_caps);
        ok = co_await send_raw(out);
        break;
      }
      case my::com::STMT_PREPARE: {
        if (statements.size() >= kMaxStatements) {
          ok = co_await reply_err(1461, "42000", "Can't create more than 1024 prepared statements on the admin console");
          break;
        }
        auto sql = payload.substr(1);
        auto cols = admin::describe(sql);
        std::uint32_t id = next_stmt++;
        statements[id] = sql;
        std::string out, p;
        p.push_back(0);
        my::put_u32(p, id);
        my::put_u16(p, static_cast<std::uint16_t>(cols ? cols->size() : 0));
        my::put_u16(p, 0);  // parameters: console statements take none
        p.push_back(0);
        my::put_u16(p, 0);
        auto seq = my::append_packets(out, p, next_seq);
        if (cols && !cols->empty()) {
          for (auto& c : *cols) {
            p.clear();
            admin::mysql_column_def(p, c, mariadb_caps);
            seq = my::append_packets(out, p, seq);
          }
          if (!(caps & my::cap::DEPRECATE_EOF)) {
            p.clear();
            my::build_eof(p, 0, status);
            my::append_packets(out, p, seq);
          }
        }
        ok = co_await send_raw(out);
        break;
      }
      case my::com::STMT_EXECUTE: {
        my::Reader r(my::as_bytes(payload));
        r.u8();
        auto id = r.u32();
        auto it = statements.find(id);
        if (!r.ok() || it == statements.end()) {
          ok = co_await reply_err(1243, "HY000", fmt::format("Unknown prepared statement handler ({}) given to mysqld_stmt_execute", id));
          break;
        }
        if (info) info->queries.fetch_add(1, std::memory_order_relaxed);
        auto res = co_await admin::run(ctx, it->second, caller);
        std::string out;
        admin::mysql_result(out, res, next_seq, caps, true, status, mariadb_caps);
        ok = co_await send_raw(out);
        break;
      }
      case my::com::STMT_CLOSE: {
        my::Reader r(my::as_bytes(payload));
        r.u8();
        statements.erase(r.u32());
        break;  // no response
      }
      case my::com::STMT_RESET:
        ok = co_await reply_ok();
        break;
      default:
        ok = co_await reply_err(my::er::UNKNOWN_COM, "08S01", "Unknown command on the admin console");
        break;
    }
    if (!ok) co_return;
  }
}

}  // namespace sluice::frontend::mysql

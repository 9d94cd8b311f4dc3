// Admin console over the PostgreSQL protocol (docs 55.2.2 simple query, 55.2.3 extended query).
#include "src/frontend/postgres/admin.hpp"

#include <boost/asio/ssl.hpp>
#include <fmt/format.h>

#include <map>

#include "protocols/postgres/codec.hpp"
#include "sluice/version.hpp"
#include "src/admin/render.hpp"
#include "src/state/context.hpp"
#include "src/observe/log.hpp"

namespace sluice::frontend::pg {

namespace asio = boost::asio;
namespace wire = sluice::pg;
using asio::use_awaitable;
using boost::system::error_code;

namespace {

constexpr std::size_t kMaxNamed = 1024;  // statements and portals per console connection

struct Portal {
  std::string sql;
  std::vector<std::int16_t> formats;
  std::optional<admin::Result> result;  // run once, at the first Execute
};

std::vector<std::int16_t> result_formats(wire::Bytes body, std::size_t rest_offset, bool& ok) {
  wire::Reader r(body.subspan(rest_offset));
  auto nfmt = r.i16();
  for (int i = 0; i < nfmt; ++i) r.i16();
  auto nparams = r.i16();
  for (int i = 0; i < nparams; ++i) {
    auto len = r.i32();
    if (len > 0) r.bytes(static_cast<std::size_t>(len));
  }
  std::vector<std::int16_t> out;
  auto nres = r.i16();
  for (int i = 0; i < nres && r.ok(); ++i) out.push_back(r.i16());
  ok = r.ok() && nres >= 0 && nfmt >= 0 && nparams >= 0;
  return out;
}

}  // namespace

asio::awaitable<void> serve_admin(net::Channel sock, std::string buffered, state::Context& ctx, admin::Caller caller,
                                  std::size_t max_packet) {
  std::string out;
  const std::pair<const char*, std::string> params[] = {
      {"server_version", "15.0 (Sluice " SLUICE_VERSION ")"},
      {"server_encoding", "UTF8"},
      {"client_encoding", "UTF8"},
      {"DateStyle", "ISO, MDY"},
      {"TimeZone", "UTC"},
      {"integer_datetimes", "on"},
      {"standard_conforming_strings", "on"},
      {"is_superuser", caller.admin ? "on" : "off"},
      {"application_name", ""},
  };
  for (auto& [k, v] : params) wire::parameter_status(out, k, v);
  wire::backend_key_data(out, static_cast<std::uint32_t>(caller.client_id), 0);
  wire::ready_for_query(out, 'I');

  std::string in = std::move(buffered);
  std::map<std::string, std::string, std::less<>> statements;  // name -> sql
  std::map<std::string, Portal, std::less<>> portals;
  bool skipping = false;  // after an error in an extended batch: until Sync
  std::vector<char> chunk(16 * 1024);
  auto info = ctx.client_table.find(caller.client_id);

  for (;;) {
    if (!out.empty()) {
      error_code ec;
      co_await sock.write(asio::buffer(out), ec);
      if (ec) co_return;
      out.clear();
    }
    wire::Frame f;
    auto d = wire::next_frame(wire::Bytes(reinterpret_cast<const std::uint8_t*>(in.data()), in.size()), max_packet, f);
    if (d == wire::Decode::Malformed) {
      wire::error_response(out, "FATAL", "08P01", "invalid message length");
      error_code ec;
      co_await sock.write(asio::buffer(out), ec);
      co_return;
    }
    if (d == wire::Decode::NeedMore) {
      if (info) info->set_state(observe::ClientState::Idle);
      error_code ec;
      auto n = co_await sock.read_some(asio::buffer(chunk), ec);
      if (ec || n == 0) co_return;
      in.append(chunk.data(), n);
      continue;
    }
    std::string frame_copy(in.data(), f.size());
    in.erase(0, f.size());
    wire::Bytes body(reinterpret_cast<const std::uint8_t*>(frame_copy.data()) + 5, frame_copy.size() - 5);
    if (info) {
      info->set_state(observe::ClientState::Active);
      info->request_time_us.store(observe::coarse_epoch_us(), std::memory_order_relaxed);
    }
    if (f.type == wire::fe::Terminate) co_return;
    if (skipping && f.type != wire::fe::Sync) continue;
    auto fail = [&](std::string code, std::string msg) {
      wire::error_response(out, "ERROR", code, msg);
      skipping = true;
    };
    switch (f.type) {
      case wire::fe::Query: {
        wire::Reader r(body);
        auto q = r.cstr();
        if (!r.ok()) {
          wire::error_response(out, "FATAL", "08P01", "malformed Query message");
          error_code ec;
          co_await sock.write(asio::buffer(out), ec);
          co_return;
        }
        // Several statements in one Query run in order, each with its own result, up to the
        // first error (as a server does).
        auto statements = admin::split_statements(q);
        if (statements.empty()) admin::pg_result(out, admin::Result{});  // EmptyQueryResponse
        for (auto& one : statements) {
          if (info) info->queries.fetch_add(1, std::memory_order_relaxed);
          auto res = co_await admin::run(ctx, one, caller);
          if (!res.error && !res.columns.empty()) admin::pg_row_description(out, res.columns);
          admin::pg_result(out, res);
          if (res.error) break;
        }
        wire::ready_for_query(out, 'I');
        break;
      }
      case wire::fe::Parse: {
        wire::ParseView pv;
        if (!wire::parse_parse(body, pv)) {
          fail("08P01", "malformed Parse message");
          break;
        }
        if (statements.size() >= kMaxNamed && !statements.count(pv.name)) {
          fail("53400", "too many prepared statements on this admin console connection (limit 1024)");
          break;
        }
        statements[std::string(pv.name)] = std::string(pv.query);
        wire::parse_complete(out);
        break;
      }
      case wire::fe::Bind: {
        wire::BindHead bh;
        bool ok = wire::parse_bind_head(body, bh);
        auto st = statements.find(bh.statement);
        if (!ok || st == statements.end()) {
          fail("26000", fmt::format("prepared statement \"{}\" does not exist", bh.statement));
          break;
        }
        auto formats = result_formats(body, bh.rest_offset, ok);
        if (!ok) {
          fail("08P01", "malformed Bind message");
          break;
        }
        if (portals.size() >= kMaxNamed && !portals.count(bh.portal)) {
          fail("53400", "too many portals on this admin console connection (limit 1024)");
          break;
        }
        portals[std::string(bh.portal)] = Portal{st->second, std::move(formats), std::nullopt};
        wire::Builder(out).begin(wire::be::BindComplete).end();
        break;
      }
      case wire::fe::Describe: {
        wire::TargetView tv;
        if (!wire::parse_target(body, tv)) {
          fail("08P01", "malformed Describe message");
          break;
        }
        std::string sql;
        std::vector<std::int16_t> formats;
        if (tv.kind == 'S') {
          auto st = statements.find(tv.name);
          if (st == statements.end()) {
            fail("26000", fmt::format("prepared statement \"{}\" does not exist", tv.name));
            break;
          }
          sql = st->second;
          wire::Builder(out).begin(wire::be::ParameterDescription).i16(0).end();
        } else {
          auto p = portals.find(tv.name);
          if (p == portals.end()) {
            fail("34000", fmt::format("portal \"{}\" does not exist", tv.name));
            break;
          }
          sql = p->second.sql;
          formats = p->second.formats;
        }
        if (auto cols = admin::describe(sql)) admin::pg_row_description(out, *cols, formats);
        else wire::Builder(out).begin(wire::be::NoData).end();
        break;
      }
      case wire::fe::Execute: {
        wire::Reader r(body);
        auto name = r.cstr();
        auto p = portals.find(name);
        if (!r.ok() || p == portals.end()) {
          fail("34000", fmt::format("portal \"{}\" does not exist", name));
          break;
        }
        if (!p->second.result) {
          if (info) info->queries.fetch_add(1, std::memory_order_relaxed);
          p->second.result = co_await admin::run(ctx, p->second.sql, caller);
        } else {
          p->second.result->rows.clear();  // already fetched: nothing more
        }
        admin::pg_result(out, *p->second.result, p->second.formats);
        if (p->second.result->error) skipping = true;
        break;
      }
      case wire::fe::Close: {
        wire::TargetView tv;
        if (wire::parse_target(body, tv)) {
          if (tv.kind == 'S') statements.erase(std::string(tv.name));
          else portals.erase(std::string(tv.name));
        }
        wire::close_complete(out);
        break;
      }
      case wire::fe::Sync:
        skipping = false;
        portals.erase("");
        wire::ready_for_query(out, 'I');
        break;
      case wire::fe::Flush:
        break;
      default:
        wire::error_response(out, "FATAL", "08P01", fmt::format("admin console: unsupported message type '{}'", f.type));
        error_code ec;
        co_await sock.write(asio::buffer(out), ec);
        co_return;
    }
  }
}

}  // namespace sluice::frontend::pg

// Admission against max_client_conn and the server side of TLS (admission.hpp).
#include "src/frontend/common/admission.hpp"

#include <fmt/format.h>
#include <sys/socket.h>

#include "src/frontend/common/worker_sessions.hpp"
#include "src/net/address_text.hpp"
#include "src/observe/log.hpp"

namespace sluice::frontend {

namespace asio = boost::asio;

asio::awaitable<ClientSlot> admit(asio::ip::tcp::socket& sock, state::Context& ctx, const std::string& refusal) {
  boost::system::error_code ec;
  sock.set_option(asio::ip::tcp::no_delay(true), ec);
  if (ctx.clients.fetch_add(1) >= ctx.snapshot()->config->general.max_client_conn) {
    ctx.clients.fetch_sub(1);
    co_await asio::async_write(sock, asio::buffer(refusal), asio::redirect_error(asio::use_awaitable, ec));
    co_return ClientSlot{};
  }
  co_return ClientSlot{ctx};
}

asio::awaitable<std::optional<net::Origin>> admit_origin(asio::ip::tcp::socket& sock, state::Context& ctx,
                                                         const Door& door, ClientSlot& slot) {
  auto snap = ctx.snapshot();
  const auto& cfg = *snap->config;
  const auto& proxy = door.protocol == config::Protocol::Postgres ? cfg.postgres.proxy : cfg.mysql.proxy;
  std::string why;
  auto origin = co_await net::take_origin(sock, proxy, cfg.general.client_login_timeout, why);
  if (!origin) {
    log::info("connection from {} refused: {}", net::peer_origin(sock).addr, why);
    co_return std::nullopt;
  }
  if (door.refused_by_address) {
    if (auto v = snap->access->refused_by_address(door.protocol, origin->addr)) {
      log::info("connection from {} refused by {}", origin->addr,
                v->rule ? fmt::format("access rule {} ({})", v->rule, v->rule_name) : std::string("no access rule"));
      std::string out = door.refused_by_address(*v, origin->addr);
      boost::system::error_code ec;
      co_await asio::async_write(sock, asio::buffer(out), asio::redirect_error(asio::use_awaitable, ec));
      co_return std::nullopt;
    }
  }
  // [limits] by address, before any TLS or password work.
  std::optional<access::Limit> over;
  std::uint32_t value = 0;
  if (auto rate = cfg.limits.connections_per_second_per_address) {
    auto bucket = ctx.limits.rates.get(access::Limit::ConnectionRate, origin->addr);
    if (!bucket->admit(rate, std::chrono::nanoseconds(0), std::chrono::steady_clock::now()))
      over = access::Limit::ConnectionRate, value = rate;
  }
  if (!over) {
    auto t = ctx.limits.connections.take(access::Scope::Address, origin->addr, cfg.limits.max_connections_per_address);
    if (t) slot.hold_address(std::move(t));
    else over = access::Limit::ConnectionsPerAddress, value = cfg.limits.max_connections_per_address;
  }
  if (over) {
    ctx.limits.count_refusal(*over);
    log::debug("connection from {} refused: [limits] {} = {}", origin->addr, access::to_string(*over), value);
    if (door.refused_by_limit) {
      std::string out = door.refused_by_limit(*over, origin->addr, value);
      boost::system::error_code ec;
      co_await asio::async_write(sock, asio::buffer(out), asio::redirect_error(asio::use_awaitable, ec));
    }
    co_return std::nullopt;
  }
  co_return origin;
}

bool refuse_at_accept(int fd, const asio::ip::tcp::endpoint& peer, state::Context& ctx, const Door& door) {
  auto snap = ctx.snapshot();
  const auto& cfg = *snap->config;
  const std::uint32_t rate = cfg.limits.connections_per_second_per_address;
  if (rate == 0) return false;
  const auto& proxy = door.protocol == config::Protocol::Postgres ? cfg.postgres.proxy : cfg.mysql.proxy;
  if (!proxy.trusted.empty()) return false;
  if (ctx.clients.load(std::memory_order_relaxed) >= cfg.general.max_client_conn) return false;
  const std::string addr = net::client_address_text(peer.address());
  if (door.refused_by_address && snap->access->refused_by_address(door.protocol, addr)) return false;
  auto bucket = ctx.limits.rates.get(access::Limit::ConnectionRate, addr);
  if (!bucket->would_refuse(rate, std::chrono::nanoseconds(0), std::chrono::steady_clock::now())) return false;
  ctx.limits.count_refusal(access::Limit::ConnectionRate);
  log::debug("connection from {} refused at accept: [limits] {} = {}", addr,
             access::to_string(access::Limit::ConnectionRate), rate);
  if (door.refused_by_limit) {
    const std::string out = door.refused_by_limit(access::Limit::ConnectionRate, addr, rate);
    [[maybe_unused]] auto sent = ::send(fd, out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  }
  return true;
}

void log_internal_error(const char* what, const std::exception& e) {
  log::error("{} ended by an internal error: {}", what, e.what());
}

asio::awaitable<std::unique_ptr<net::TlsStream>> accept_tls(asio::ip::tcp::socket& sock,
                                                            std::shared_ptr<asio::ssl::context> tls,
                                                            observe::ClientInfo& info) {
  auto stream = std::make_unique<net::TlsStream>(sock, std::move(tls), net::TlsStream::Role::Server);
  boost::system::error_code ec;
  co_await stream->handshake(ec);
  if (ec) {
    const auto why = ec.message();
    log::event(log::Level::Info, "tls_failed",
               {.client_id = info.id, .address = info.addr, .port = info.port, .reason = why},
               "client {} {}:{}: TLS handshake failed: {}", info.id, info.addr, info.port, why);
    co_return nullptr;
  }
  info.tls = true;
  co_return stream;
}

void log_handed_over(std::uint64_t client_id) {
  log::debug("upgrade: client {} handed over to the new process", client_id);
}

void make_killable(observe::ClientInfo& info, const asio::any_io_executor& ex) {
  info.worker = &static_cast<asio::io_context&>(asio::query(ex, asio::execution::context));
  observe::kill_on_worker.store(&kill_local, std::memory_order_relaxed);
}

void write_goodbye(asio::ip::tcp::socket& sock, net::TlsStream* tls, const std::string& out) {
  boost::system::error_code e;
  if (!tls) {
    sock.non_blocking(true, e);
    sock.write_some(asio::buffer(out), e);
  } else if (!tls->write_pending()) {
    tls->write_now(asio::buffer(out), e);
  }
}

}  // namespace sluice::frontend

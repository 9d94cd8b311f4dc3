// libFuzzer target: the PostgreSQL wire codec and relay, both directions. The input is split in
// two by its first two bytes: a client byte stream (a startup packet is tried first, then typed
// messages through Relay::client_message) and a server byte stream fed to Relay::server_bytes in
// pieces whose sizes come from the input, as a socket would deliver them. Also SCRAM messages.
#include <cstddef>
#include <cstdint>
#include <string>

#include <boost/asio.hpp>

#include "protocols/postgres/codec.hpp"
#include "protocols/postgres/scram.hpp"
#include "src/frontend/postgres/relay.hpp"

using namespace sluice;
namespace wire = sluice::pg;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static boost::asio::io_context io;
  if (size < 3) return 0;
  std::size_t split = std::min<std::size_t>(size - 2, (std::size_t(data[0]) << 8) | data[1]);
  wire::Bytes client(data + 2, split), server(data + 2 + split, size - 2 - split);

  // Startup packet (untyped).
  wire::StartupPacket sp;
  std::size_t consumed = 0;
  if (wire::parse_startup(client, sp, consumed) == wire::Decode::Ok) client = client.subspan(consumed);

  pool::ServerConn conn{boost::asio::ip::tcp::socket(io)};
  conn.params.set("TimeZone", "UTC");
  conn.initial = conn.params;
  frontend::pg::Relay relay;
  std::string server_out, client_out;
  std::size_t pos = 0;
  while (pos < client.size()) {
    wire::Frame f;
    if (wire::next_frame(client.subspan(pos), 1 << 16, f) != wire::Decode::Ok) break;
    pos += f.size();
    wire::ParseView pv;
    wire::parse_parse(f.body, pv);
    wire::BindHead bh;
    wire::parse_bind_head(f.body, bh);
    wire::TargetView tv;
    wire::parse_target(f.body, tv);
    if (relay.client_message(f, conn, server_out) != frontend::pg::Relay::Verdict::Ok) break;
    relay.try_answer_locally(client.subspan(pos), 1 << 16, client_out);
  }
  // Server stream in pieces: sizes from the stream's own bytes (1..64).
  pos = 0;
  while (pos < server.size()) {
    std::size_t n = std::min<std::size_t>(server.size() - pos, 1 + server[pos] % 64);
    if (relay.server_bytes(server.subspan(pos, n), conn, client_out) != frontend::pg::Relay::Verdict::Ok) break;
    relay.drain_synthetic(client_out);
    pos += n;
  }
  // Server messages parsed as such.
  pos = 0;
  while (pos < server.size()) {
    wire::Frame f;
    if (wire::next_frame(server.subspan(pos), 1 << 16, f) != wire::Decode::Ok) break;
    pos += f.size();
    wire::ErrorFields ef;
    wire::parse_error_fields(f.body, ef);
    std::string_view name, value;
    wire::parse_parameter_status(f.body, name, value);
  }
  // SCRAM: the client's messages as a server reads them.
  static const auto secret = wire::make_scram_secret("pencil", "saltsaltsalt", 16);
  wire::ScramServer scram(secret, "servernonce", "binding");
  std::string err;
  if (scram.client_first(wire::as_sv(client), err)) scram.client_final(wire::as_sv(server), err);
  wire::parse_scram_secret(wire::as_sv(server));
  return 0;
}

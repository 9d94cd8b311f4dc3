// libFuzzer target: the MySQL codec. The first byte picks the capability set and the response
// kind; the rest is parsed as every login and command message, as compressed frames, split into packets, and fed as a
// server's response stream to the ResponseTracker in socket-sized pieces.
#include <cstddef>
#include <cstdint>
#include <string>

#include "protocols/mysql/codec.hpp"
#include "protocols/mysql/compress.hpp"
#include "src/frontend/mysql/response.hpp"

using namespace sluice;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  std::uint8_t mode = data[0];
  my::Bytes in(data + 1, size - 1);
  std::uint32_t caps = my::cap::PROTOCOL_41 | my::cap::SECURE_CONNECTION | my::cap::PLUGIN_AUTH |
                       my::cap::PLUGIN_AUTH_LENENC_CLIENT_DATA | my::cap::TRANSACTIONS;
  if (mode & 1) caps |= my::cap::DEPRECATE_EOF;
  if (mode & 2) caps |= my::cap::SESSION_TRACK;
  if (mode & 4) caps |= my::cap::CONNECT_ATTRS | my::cap::CONNECT_WITH_DB;

  // Whole payloads.
  my::Handshake hs;
  my::parse_handshake(in, hs);
  my::HandshakeResponse hr;
  my::parse_handshake_response(in, hr);
  my::ChangeUser cu;
  my::parse_change_user(in, caps, cu);
  if (!in.empty() && in[0] == 0xFE) {
    my::AuthSwitch sw;
    my::parse_auth_switch(in, sw);
  }
  my::Ok ok;
  if (my::parse_ok(in, (caps & my::cap::SESSION_TRACK) != 0, ok)) {
    my::SessionChanges ch;
    my::parse_session_state(ok.session_state, ch);
  }
  my::Err err;
  my::parse_err(in, err);
  for (auto codec : {my::Codec::Zlib, my::Codec::Zstd}) {  // compressed frames, as a client sends them
    std::string plain;
    std::uint8_t zseq = 0;
    std::size_t at = 0, used = 0;
    while (at < in.size() && my::next_compressed(in.subspan(at), 1u << 20, plain, zseq, used, codec) == my::Decode::Ok)
      at += used;
  }
  my::PrepareOk pok;
  my::parse_prepare_ok(in, pok);
  my::ExecuteView ev;
  std::string rewritten;
  if (my::parse_execute(in, static_cast<std::uint16_t>(mode >> 3), ev)) my::execute_with_types(rewritten, in, ev, "");
  my::eof_status(in, (mode & 1) != 0, (mode & 2) != 0);

  // Framing: packets and logical messages.
  std::size_t pos = 0;
  while (pos < in.size()) {
    std::string payload;
    std::uint8_t seq = 0;
    std::size_t used = 0;
    if (my::next_message(in.subspan(pos), 1 << 16, payload, seq, used) != my::Decode::Ok || used == 0) break;
    pos += used;
  }

  // A server's response stream.
  static const frontend::mysql::ResponseKind kinds[] = {
      frontend::mysql::ResponseKind::Query, frontend::mysql::ResponseKind::Fetch,
      frontend::mysql::ResponseKind::Prepare, frontend::mysql::ResponseKind::FieldList,
      frontend::mysql::ResponseKind::Single, frontend::mysql::ResponseKind::Raw1};
  frontend::mysql::ResponseTracker t;
  t.start(kinds[(mode >> 3) % 6], caps, caps, 7);
  std::string buffered, out;
  pos = 0;
  while (pos < in.size() && !t.done() && !t.malformed()) {
    std::size_t n = std::min<std::size_t>(in.size() - pos, 1 + in[pos] % 128);
    buffered.append(reinterpret_cast<const char*>(in.data() + pos), n);
    pos += n;
    std::size_t used = t.feed(my::as_bytes(buffered), out);
    buffered.erase(0, used);
    if (t.summary.local_infile && used == 0 && buffered.empty()) t.infile_sent();
  }
  return 0;
}

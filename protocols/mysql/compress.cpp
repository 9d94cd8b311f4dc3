// The MySQL compressed protocol (see header).
#include "protocols/mysql/compress.hpp"

#include <zlib.h>

#include <algorithm>

namespace sluice::my {

namespace {
void put_header(std::string& out, std::size_t len, std::uint8_t seq, std::size_t raw_len) {
  put_u24(out, static_cast<std::uint32_t>(len));
  put_u8(out, seq);
  put_u24(out, static_cast<std::uint32_t>(raw_len));
}
}  // namespace

std::uint8_t append_compressed(std::string& out, std::string_view bytes, std::uint8_t seq) {
  std::size_t pos = 0;
  do {
    std::string_view chunk = bytes.substr(pos, std::min<std::size_t>(bytes.size() - pos, kMaxPayload));
    pos += chunk.size();
    if (chunk.size() >= kMinCompressLength) {
      uLongf bound = compressBound(static_cast<uLong>(chunk.size()));
      std::size_t at = out.size();
      out.resize(at + 7 + bound);
      uLongf len = bound;
      int rc =
          compress2(reinterpret_cast<Bytef*>(out.data() + at + 7), &len, reinterpret_cast<const Bytef*>(chunk.data()),
                    static_cast<uLong>(chunk.size()), Z_DEFAULT_COMPRESSION);
      if (rc == Z_OK && len < chunk.size() && len <= kMaxPayload) {
        out.resize(at + 7 + len);
        std::string head;
        put_header(head, len, seq++, chunk.size());
        out.replace(at, 7, head);
        continue;
      }
      out.resize(at);  // not worth it: stored
    }
    put_header(out, chunk.size(), seq++, 0);
    out.append(chunk);
  } while (pos < bytes.size());
  return seq;
}

Decode next_compressed(Bytes in, std::size_t max_len, std::string& out, std::uint8_t& seq, std::size_t& consumed) {
  if (in.size() < 7) return Decode::NeedMore;
  std::size_t len = payload_length(in.data());
  seq = in[3];
  std::size_t raw_len = payload_length(in.data() + 4);
  if (in.size() < 7 + len) return Decode::NeedMore;
  const std::uint8_t* payload = in.data() + 7;
  if (raw_len == 0) {
    if (len > max_len) return Decode::Malformed;
    out.append(reinterpret_cast<const char*>(payload), len);
  } else {
    if (raw_len > max_len) return Decode::Malformed;
    std::size_t at = out.size();
    out.resize(at + raw_len);
    uLongf got = static_cast<uLongf>(raw_len);
    int rc = uncompress(reinterpret_cast<Bytef*>(out.data() + at), &got, payload, static_cast<uLong>(len));
    if (rc != Z_OK || got != raw_len) {
      out.resize(at);
      return Decode::Malformed;
    }
  }
  consumed = 7 + len;
  return Decode::Ok;
}

}  // namespace sluice::my

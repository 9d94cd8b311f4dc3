// The MySQL compressed protocol (see header).
#include "protocols/mysql/compress.hpp"

#include <zlib.h>
#include <zstd.h>

#include <algorithm>

namespace sluice::my {

namespace {

void put_header(std::string& out, std::size_t len, std::uint8_t seq, std::size_t raw_len) {
  put_u24(out, static_cast<std::uint32_t>(len));
  put_u8(out, seq);
  put_u24(out, static_cast<std::uint32_t>(raw_len));
}

// One deflate and one inflate stream per thread, reset for each frame: compress2()/uncompress()
// would allocate (at 256 KiB, by mmap) and initialize a fresh one per frame, and a stream per
// connection would cost every compressed client that memory while it idles.
struct Streams {
  z_stream def{}, inf{};
  bool def_ok = false, inf_ok = false;
  Streams() {
    def_ok = deflateInit(&def, Z_DEFAULT_COMPRESSION) == Z_OK;
    inf_ok = inflateInit(&inf) == Z_OK;
  }
  ~Streams() {
    if (def_ok) deflateEnd(&def);
    if (inf_ok) inflateEnd(&inf);
  }
  Streams(const Streams&) = delete;
  Streams& operator=(const Streams&) = delete;
};

Streams& streams() {
  thread_local Streams s;
  return s;
}

// zstd's contexts, one of each per thread for the same reason.
struct ZstdContexts {
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ZSTD_DCtx* d = ZSTD_createDCtx();
  ZstdContexts() = default;
  ~ZstdContexts() {
    ZSTD_freeCCtx(c);
    ZSTD_freeDCtx(d);
  }
  ZstdContexts(const ZstdContexts&) = delete;
  ZstdContexts& operator=(const ZstdContexts&) = delete;
};

ZstdContexts& zstd() {
  thread_local ZstdContexts z;
  return z;
}

std::size_t zstd_frame(std::string_view in, char* out, std::size_t cap, int level) {
  ZstdContexts& z = zstd();
  if (!z.c) return 0;
  std::size_t n = ZSTD_compressCCtx(z.c, out, cap, in.data(), in.size(), std::clamp(level, 1, 22));
  return ZSTD_isError(n) ? 0 : n;
}

// One whole zstd frame in `in` that decompresses to exactly `len` bytes.
bool unzstd_frame(const std::uint8_t* in, std::size_t in_len, char* out, std::size_t len) {
  ZstdContexts& z = zstd();
  if (!z.d) return false;
  std::size_t n = ZSTD_decompressDCtx(z.d, out, len, in, in_len);
  return !ZSTD_isError(n) && n == len;
}

// Deflates `in` into at most `cap` bytes at `out`: the compressed size, or 0 when it does not fit.
std::size_t deflate_frame(std::string_view in, char* out, std::size_t cap) {
  Streams& s = streams();
  if (!s.def_ok || deflateReset(&s.def) != Z_OK) return 0;
  s.def.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  s.def.avail_in = static_cast<uInt>(in.size());
  s.def.next_out = reinterpret_cast<Bytef*>(out);
  s.def.avail_out = static_cast<uInt>(cap);
  if (deflate(&s.def, Z_FINISH) != Z_STREAM_END) return 0;
  return cap - s.def.avail_out;
}

// Inflates `in` into exactly `len` bytes at `out`, using all of `in`.
bool inflate_frame(const std::uint8_t* in, std::size_t in_len, char* out, std::size_t len) {
  Streams& s = streams();
  if (!s.inf_ok || inflateReset(&s.inf) != Z_OK) return false;
  s.inf.next_in = const_cast<Bytef*>(in);
  s.inf.avail_in = static_cast<uInt>(in_len);
  s.inf.next_out = reinterpret_cast<Bytef*>(out);
  s.inf.avail_out = static_cast<uInt>(len);
  return inflate(&s.inf, Z_FINISH) == Z_STREAM_END && s.inf.avail_out == 0 && s.inf.avail_in == 0;
}

}  // namespace

std::uint8_t append_compressed(std::string& out, std::string_view bytes, std::uint8_t seq, Codec codec, int level) {
  std::size_t pos = 0;
  do {
    std::string_view chunk = bytes.substr(pos, std::min<std::size_t>(bytes.size() - pos, kMaxPayload));
    pos += chunk.size();
    if (chunk.size() >= kMinCompressLength) {
      // Only a result smaller than the input is worth sending: room for just that much.
      std::size_t at = out.size();
      out.resize(at + 7 + chunk.size());
      std::size_t len = codec == Codec::Zstd ? zstd_frame(chunk, out.data() + at + 7, chunk.size() - 1, level)
                                             : deflate_frame(chunk, out.data() + at + 7, chunk.size() - 1);
      if (len > 0) {
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

Decode next_compressed(Bytes in, std::size_t max_len, std::string& out, std::uint8_t& seq, std::size_t& consumed,
                       Codec codec) {
  if (in.size() < 7) return Decode::NeedMore;
  std::size_t len = payload_length(in.data());
  seq = in[3];
  std::size_t raw_len = payload_length(in.data() + 4);
  if (len > max_len || raw_len > max_len) return Decode::Malformed;  // before buffering it whole
  if (in.size() < 7 + len) return Decode::NeedMore;
  const std::uint8_t* payload = in.data() + 7;
  if (raw_len == 0) {
    if (len > max_len) return Decode::Malformed;
    out.append(reinterpret_cast<const char*>(payload), len);
  } else {
    if (raw_len > max_len) return Decode::Malformed;
    std::size_t at = out.size();
    out.resize(at + raw_len);
    bool ok = codec == Codec::Zstd ? unzstd_frame(payload, len, out.data() + at, raw_len)
                                   : inflate_frame(payload, len, out.data() + at, raw_len);
    if (!ok) {
      out.resize(at);
      return Decode::Malformed;
    }
  }
  consumed = 7 + len;
  return Decode::Ok;
}

}  // namespace sluice::my

// Shared-store record (see header). Layout, integers big-endian:
//   "SLC1" | u8 replica | i64 expires | str key | str cluster | u16 n, str table * n |
//   u16 n, (u32 domain, u64 sequence) * n | str value          where str = u32 length, bytes
#include "src/cache/shared_entry.hpp"

namespace sluice::cache {

namespace {

constexpr std::string_view kMagic = "SLC1";
constexpr std::size_t kMaxName = 4096;  // a key of the cache is normalized text: bounded by policy
constexpr std::size_t kMaxKey = 1u << 20;
constexpr std::size_t kMaxTables = 1024;
constexpr std::size_t kMaxParts = 64;

void put_uint(std::string& out, std::uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out += static_cast<char>((v >> (8 * i)) & 0xFF);
}
void put_str(std::string& out, std::string_view s) {
  put_uint(out, s.size(), 4);
  out.append(s);
}

struct In {
  std::string_view b;
  std::size_t pos = 0;
  bool ok = true;
  std::uint64_t uint(int bytes) {
    if (!ok || b.size() - pos < static_cast<std::size_t>(bytes)) {
      ok = false;
      return 0;
    }
    std::uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<unsigned char>(b[pos++]);
    return v;
  }
  std::string str(std::size_t max) {
    auto n = uint(4);
    if (!ok || n > max || b.size() - pos < n) {
      ok = false;
      return {};
    }
    std::string s(b.substr(pos, n));
    pos += n;
    return s;
  }
};

}  // namespace

std::string encode_shared(const SharedEntry& e) {
  std::string out(kMagic);
  out.reserve(e.value.size() + e.key.size() + 64);
  out += static_cast<char>(e.replica ? 1 : 0);
  put_uint(out, static_cast<std::uint64_t>(e.expires_unix_ms), 8);
  put_str(out, e.key);
  put_str(out, e.cluster);
  put_uint(out, e.tables.size(), 2);
  for (auto& t : e.tables) put_str(out, t);
  put_uint(out, e.data.parts.size(), 2);
  for (auto& [domain, seq] : e.data.parts) {
    put_uint(out, domain, 4);
    put_uint(out, seq, 8);
  }
  put_str(out, e.value);
  return out;
}

std::optional<SharedEntry> decode_shared(std::string_view bytes, std::size_t max_value) {
  if (bytes.substr(0, kMagic.size()) != kMagic) return std::nullopt;
  In in{bytes, kMagic.size()};
  SharedEntry e;
  auto replica = in.uint(1);
  if (replica > 1) return std::nullopt;
  e.replica = replica == 1;
  e.expires_unix_ms = static_cast<std::int64_t>(in.uint(8));
  e.key = in.str(kMaxKey);
  e.cluster = in.str(kMaxName);
  auto tables = in.uint(2);
  if (tables > kMaxTables) return std::nullopt;
  for (std::uint64_t i = 0; i < tables && in.ok; ++i) e.tables.push_back(in.str(kMaxName));
  auto parts = in.uint(2);
  if (parts > kMaxParts) return std::nullopt;
  for (std::uint64_t i = 0; i < parts && in.ok; ++i) {
    auto domain = static_cast<std::uint32_t>(in.uint(4));
    e.data.parts.emplace_back(domain, in.uint(8));
  }
  e.value = in.str(max_value);
  if (!in.ok || in.pos != bytes.size()) return std::nullopt;
  return e;
}

}  // namespace sluice::cache

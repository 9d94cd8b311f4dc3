// PROXY protocol v1 and v2 parsing (proxy_header.hpp), after HAProxy's proxy-protocol.txt.
#include "protocols/common/proxy_header.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <string_view>

namespace sluice::proxy {
namespace {

constexpr std::array<std::uint8_t, 12> kSignature{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                  0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
constexpr std::string_view kV1Prefix = "PROXY ";

bool prefix_of(std::span<const std::uint8_t> in, std::span<const std::uint8_t> full) {
  std::size_t n = std::min(in.size(), full.size());
  return std::memcmp(in.data(), full.data(), n) == 0;
}

std::span<const std::uint8_t> bytes_of(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// An address as the spec writes it (2.1): dotted quad for TCP4, RFC 4291 text for TCP6. Returns
// the canonical text (inet_ntop), or "" when `s` is not one.
std::string canonical(std::string_view s, int family) {
  if (s.empty() || s.size() >= INET6_ADDRSTRLEN) return {};
  char text[INET6_ADDRSTRLEN];
  std::memcpy(text, s.data(), s.size());
  text[s.size()] = 0;
  unsigned char raw[16];
  if (inet_pton(family, text, raw) != 1) return {};
  char out[INET6_ADDRSTRLEN];
  if (!inet_ntop(family, raw, out, sizeof out)) return {};
  return out;
}

// A port as the spec writes it: a decimal number from 0 to 65535.
bool port_of(std::string_view s, std::uint16_t& out) {
  if (s.empty() || s.size() > 5) return false;
  unsigned v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  if (v > 65535) return false;
  out = static_cast<std::uint16_t>(v);
  return true;
}

Parse parse_v1(std::span<const std::uint8_t> in, Header& out, std::string& error) {
  std::string_view text(reinterpret_cast<const char*>(in.data()), std::min(in.size(), kMaxV1));
  auto end = text.find("\r\n");
  if (end == std::string_view::npos) {
    if (in.size() >= kMaxV1) {
      error = "PROXY v1 header without CRLF in its first 107 bytes";
      return Parse::Invalid;
    }
    // A lone '\n' or a NUL cannot be part of a v1 line: no need to wait for more.
    if (text.find('\n') != std::string_view::npos || text.find('\0') != std::string_view::npos) {
      error = "malformed PROXY v1 header";
      return Parse::Invalid;
    }
    return Parse::NeedMore;
  }
  std::string_view line = text.substr(kV1Prefix.size(), end - kV1Prefix.size());
  out = Header{};
  out.version = 1;
  out.length = end + 2;
  // Fields are separated by exactly one space (2.1).
  std::array<std::string_view, 6> f{};
  std::size_t count = 0;
  for (std::size_t pos = 0;;) {
    auto sp = line.find(' ', pos);
    if (count == f.size()) {
      error = "malformed PROXY v1 header: too many fields";
      return Parse::Invalid;
    }
    f[count++] = line.substr(pos, sp == std::string_view::npos ? std::string_view::npos : sp - pos);
    if (sp == std::string_view::npos) break;
    pos = sp + 1;
  }
  if (f[0] == "UNKNOWN") return Parse::Done;  // the rest of the line is ignored (2.1)
  int family = f[0] == "TCP4" ? AF_INET : f[0] == "TCP6" ? AF_INET6 : 0;
  if (!family) {
    error = "malformed PROXY v1 header: protocol must be TCP4, TCP6 or UNKNOWN";
    return Parse::Invalid;
  }
  if (count != 5) {
    error = "malformed PROXY v1 header: expected addresses and ports";
    return Parse::Invalid;
  }
  out.src_addr = canonical(f[1], family);
  out.dst_addr = canonical(f[2], family);
  if (out.src_addr.empty() || out.dst_addr.empty() || !port_of(f[3], out.src_port) || !port_of(f[4], out.dst_port)) {
    error = "malformed PROXY v1 header: bad address or port";
    return Parse::Invalid;
  }
  out.has_address = true;
  return Parse::Done;
}

Parse parse_v2(std::span<const std::uint8_t> in, Header& out, std::string& error) {
  if (in.size() < 16) return Parse::NeedMore;
  const std::uint8_t ver_cmd = in[12], fam = in[13];
  const std::size_t len = (static_cast<std::size_t>(in[14]) << 8) | in[15];
  if ((ver_cmd >> 4) != 2) {
    error = "PROXY v2 header with an unknown version";
    return Parse::Invalid;
  }
  const unsigned cmd = ver_cmd & 0x0F;
  if (cmd > 1) {
    error = "PROXY v2 header with an unknown command";
    return Parse::Invalid;
  }
  if (16 + len > kMaxV2) {
    error = "PROXY v2 header longer than 4096 bytes";
    return Parse::Invalid;
  }
  const unsigned family = fam >> 4, transport = fam & 0x0F;
  if (family > 3 || transport > 2) {
    error = "PROXY v2 header with an unknown address family or transport";
    return Parse::Invalid;
  }
  std::size_t need = family == 1 ? 12 : family == 2 ? 36 : family == 3 ? 216 : 0;
  if (len < need) {
    error = "PROXY v2 header shorter than its addresses";
    return Parse::Invalid;
  }
  if (in.size() < 16 + len) return Parse::NeedMore;
  out = Header{};
  out.version = 2;
  out.length = 16 + len;
  // LOCAL (health checks from the balancer itself): the connection's own addresses (2.2).
  if (cmd == 0 || family == 0 || family == 3) return Parse::Done;
  if (transport == 2) {
    error = "PROXY v2 header for a datagram connection on a stream listener";
    return Parse::Invalid;
  }
  const std::uint8_t* a = in.data() + 16;
  const std::size_t alen = family == 1 ? 4 : 16;
  const int af = family == 1 ? AF_INET : AF_INET6;
  char text[INET6_ADDRSTRLEN];
  if (!inet_ntop(af, a, text, sizeof text)) return Parse::Invalid;
  out.src_addr = text;
  if (!inet_ntop(af, a + alen, text, sizeof text)) return Parse::Invalid;
  out.dst_addr = text;
  out.src_port = static_cast<std::uint16_t>((a[2 * alen] << 8) | a[2 * alen + 1]);
  out.dst_port = static_cast<std::uint16_t>((a[2 * alen + 2] << 8) | a[2 * alen + 3]);
  out.has_address = true;
  return Parse::Done;
}

}  // namespace

bool looks_like_header(std::span<const std::uint8_t> in) {
  return !in.empty() && (prefix_of(in, bytes_of(kV1Prefix)) || prefix_of(in, kSignature));
}

Parse parse(std::span<const std::uint8_t> in, Header& out, std::string& error) {
  if (in.empty()) return Parse::NeedMore;
  if (prefix_of(in, kSignature)) return in.size() < kSignature.size() ? Parse::NeedMore : parse_v2(in, out, error);
  if (prefix_of(in, bytes_of(kV1Prefix)))
    return in.size() < kV1Prefix.size() ? Parse::NeedMore : parse_v1(in, out, error);
  error = "no PROXY protocol header where the listener expects one";
  return Parse::Invalid;
}

}  // namespace sluice::proxy

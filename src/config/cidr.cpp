// Address and CIDR parsing and matching (cidr.hpp).
#include "src/config/cidr.hpp"

#include <arpa/inet.h>

#include <cstring>

namespace sluice::config {

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  if (auto pct = text.find('%'); pct != std::string_view::npos) text = text.substr(0, pct);
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  char buf[INET6_ADDRSTRLEN];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = 0;
  IpAddress a;
  std::uint8_t v4[4];
  if (inet_pton(AF_INET, buf, v4) == 1) {
    a.bytes[10] = a.bytes[11] = 0xff;
    std::memcpy(a.bytes.data() + 12, v4, 4);
    return a;
  }
  if (inet_pton(AF_INET6, buf, a.bytes.data()) == 1) return a;
  return std::nullopt;
}

bool Cidr::contains(const IpAddress& a) const {
  unsigned full = bits / 8, rest = bits % 8;
  if (std::memcmp(a.bytes.data(), base.bytes.data(), full) != 0) return false;
  if (rest == 0) return true;
  auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (a.bytes[full] & mask) == base.bytes[full];
}

std::optional<Cidr> Cidr::parse(std::string_view text, std::string& error) {
  Cidr c;
  c.text = std::string(text);
  auto slash = text.find('/');
  std::string_view addr = text.substr(0, slash);
  auto a = IpAddress::parse(addr);
  if (!a || addr.find('%') != std::string_view::npos) {
    error = "\"" + std::string(text) + "\" is not an IP address or CIDR block";
    return std::nullopt;
  }
  const bool v4 = addr.find(':') == std::string_view::npos;
  unsigned max = v4 ? 32 : 128, len = max;
  if (slash != std::string_view::npos) {
    std::string_view n = text.substr(slash + 1);
    if (n.empty() || n.size() > 3) {
      error = "\"" + std::string(text) + "\": bad prefix length";
      return std::nullopt;
    }
    len = 0;
    for (char ch : n) {
      if (ch < '0' || ch > '9') {
        error = "\"" + std::string(text) + "\": bad prefix length";
        return std::nullopt;
      }
      len = len * 10 + static_cast<unsigned>(ch - '0');
    }
    if (len > max) {
      error = "\"" + std::string(text) + "\": prefix longer than " + std::to_string(max) + " bits";
      return std::nullopt;
    }
  }
  c.bits = v4 ? 96 + len : len;
  c.base = *a;
  for (unsigned i = c.bits; i < 128; ++i) {
    if (c.base.bytes[i / 8] & (0x80 >> (i % 8))) {
      error = "\"" + std::string(text) + "\" has host bits set below its prefix (did you mean a network address?)";
      return std::nullopt;
    }
  }
  return c;
}

}  // namespace sluice::config

// IP addresses and CIDR blocks ("10.0.0.0/8", "2001:db8::/32", "::1") as the config names them.
// IPv4 is held as an IPv4-mapped IPv6 address, so a client that reaches a dual-stack listener as
// ::ffff:10.1.2.3 matches "10.0.0.0/8".
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::config {

struct IpAddress {
  std::array<std::uint8_t, 16> bytes{};
  bool operator==(const IpAddress&) const = default;
  // "10.1.2.3", "::1", "::ffff:10.1.2.3", "fe80::1%lo" (a zone is ignored); none for anything else.
  static std::optional<IpAddress> parse(std::string_view text);
};

struct Cidr {
  IpAddress base;     // host bits cleared
  unsigned bits = 0;  // prefix length over the 128-bit form (an IPv4 /8 is 96 + 8)
  std::string text;   // as written, for SHOW and errors
  bool contains(const IpAddress& a) const;
  bool operator==(const Cidr& o) const { return base == o.base && bits == o.bits; }
  // "a.b.c.d/n", "v6/n", or a bare address (one host); "*" and "all" are not CIDRs here.
  // Host bits set below the prefix ("10.1.0.0/8") are refused: they are nearly always a typo.
  static std::optional<Cidr> parse(std::string_view text, std::string& error);
};

}  // namespace sluice::config

// An IP address as text, as Asio's to_string() writes it, without its formatting machinery for
// IPv4 (inet_ntop through sprintf: about 1,800 instructions, twice per login). IPv6 keeps
// Asio's own formatting.
#pragma once

#include <boost/asio/ip/address.hpp>

#include <string>

namespace sluice::net {

inline std::string address_text(const boost::asio::ip::address& a) {
  if (!a.is_v4()) return a.to_string();
  const auto b = a.to_v4().to_bytes();
  char buf[16];
  char* p = buf;
  for (std::size_t i = 0; i < 4; ++i) {
    unsigned v = b[i];
    if (v >= 100) *p++ = static_cast<char>('0' + v / 100);
    if (v >= 10) *p++ = static_cast<char>('0' + v / 10 % 10);
    *p++ = static_cast<char>('0' + v % 10);
    if (i < 3) *p++ = '.';
  }
  return std::string(buf, p);
}

// A peer's address as clients are known by (SHOW CLIENTS, [limits], [[access]]): an IPv4 client
// of a dual-stack listener by its IPv4 address, not the mapped IPv6 one.
inline std::string client_address_text(boost::asio::ip::address a) {
  if (a.is_v6() && a.to_v6().is_v4_mapped())
    a = boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, a.to_v6());
  return address_text(a);
}

}  // namespace sluice::net

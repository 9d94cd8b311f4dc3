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

}  // namespace sluice::net

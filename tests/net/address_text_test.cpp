// IP addresses as text (net/address_text.hpp): IPv4 formatted by hand must read as Asio's own
// to_string() does, for every digit count of every byte; IPv6 is Asio's.
#include <doctest/doctest.h>

#include "src/net/address_text.hpp"

namespace ip = boost::asio::ip;

TEST_CASE("IPv4 addresses read as Asio writes them, every byte value in every place") {
  for (unsigned v = 0; v < 256; ++v)
    for (int place = 0; place < 4; ++place) {
      ip::address_v4::bytes_type b{127, 0, 0, 1};
      b[static_cast<std::size_t>(place)] = static_cast<unsigned char>(v);
      const ip::address a{ip::address_v4(b)};
      CAPTURE(v);
      CHECK(sluice::net::address_text(a) == a.to_string());
    }
  CHECK(sluice::net::address_text(ip::make_address("255.255.255.255")) == "255.255.255.255");
  CHECK(sluice::net::address_text(ip::make_address("0.0.0.0")) == "0.0.0.0");
}

TEST_CASE("IPv6 addresses are Asio's text") {
  for (const char* t : {"::1", "fe80::1", "2001:db8::8a2e:370:7334", "::ffff:10.0.0.1"})
    CHECK(sluice::net::address_text(ip::make_address(t)) == ip::make_address(t).to_string());
}

TEST_CASE("a client's address: an IPv4 client of a dual-stack listener by its IPv4 address") {
  CHECK(sluice::net::client_address_text(ip::make_address("::ffff:10.0.0.1")) == "10.0.0.1");
  CHECK(sluice::net::client_address_text(ip::make_address("::ffff:127.0.0.1")) == "127.0.0.1");
  CHECK(sluice::net::client_address_text(ip::make_address("::1")) == "::1");
  CHECK(sluice::net::client_address_text(ip::make_address("192.168.1.20")) == "192.168.1.20");
  CHECK(sluice::net::client_address_text(ip::make_address("fe80::1")) == "fe80::1");
}

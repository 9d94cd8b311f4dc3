// PROXY protocol v1/v2 headers, byte for byte, including every split point.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "protocols/common/proxy_header.hpp"

using namespace sluice::proxy;

namespace {

std::span<const std::uint8_t> span_of(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

std::string v2(std::uint8_t ver_cmd, std::uint8_t fam, const std::string& body) {
  std::string h("\r\n\r\n\0\r\nQUIT\n", 12);
  h += static_cast<char>(ver_cmd);
  h += static_cast<char>(fam);
  h += static_cast<char>(body.size() >> 8);
  h += static_cast<char>(body.size() & 0xFF);
  return h + body;
}

std::string v2_inet(std::uint8_t ver_cmd = 0x21) {
  // 203.0.113.7:51000 -> 10.0.0.1:6432
  return v2(ver_cmd, 0x11, std::string("\xCB\x00\x71\x07\x0A\x00\x00\x01\xC7\x38\x19\x20", 12));
}

// Every prefix shorter than the header needs more; the whole header (with client bytes after
// it) is Done with the same result.
Header parse_all_splits(const std::string& header, const std::string& after = "\x00\x00\x00\x08") {
  std::string err;
  for (std::size_t n = 0; n < header.size(); ++n) {
    Header h;
    INFO("prefix of " << n << " bytes");
    REQUIRE(parse(span_of(header.substr(0, n)), h, err) == Parse::NeedMore);
  }
  Header h;
  std::string whole = header + after;
  REQUIRE(parse(span_of(whole), h, err) == Parse::Done);
  CHECK(h.length == header.size());
  return h;
}

}  // namespace

TEST_CASE("PROXY v1: TCP4, TCP6 and UNKNOWN") {
  auto h = parse_all_splits("PROXY TCP4 203.0.113.7 10.0.0.1 51000 6432\r\n");
  CHECK(h.version == 1);
  CHECK(h.has_address);
  CHECK(h.src_addr == "203.0.113.7");
  CHECK(h.dst_addr == "10.0.0.1");
  CHECK(h.src_port == 51000);
  CHECK(h.dst_port == 6432);

  h = parse_all_splits("PROXY TCP6 2001:db8:0:0:0:0:0:1 ::1 65535 1\r\n");
  CHECK(h.src_addr == "2001:db8::1");  // canonical text
  CHECK(h.dst_addr == "::1");
  CHECK(h.src_port == 65535);

  h = parse_all_splits("PROXY UNKNOWN\r\n");
  CHECK_FALSE(h.has_address);
  h = parse_all_splits("PROXY UNKNOWN ffff:f::1 ::1 1 2\r\n");  // the rest of the line is ignored
  CHECK_FALSE(h.has_address);

  // The longest header the spec allows is 107 bytes.
  std::string longest =
      "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
  REQUIRE(longest.size() == 104);
  parse_all_splits(longest);
}

TEST_CASE("PROXY v1: malformed headers are refused, not guessed at") {
  const char* bad[] = {
      "PROXY TCP4 203.0.113.7 10.0.0.1 51000\r\n",         // a field missing
      "PROXY TCP4 203.0.113.7 10.0.0.1 51000 6432 7\r\n",  // a field too many
      "PROXY TCP4 203.0.113.7  10.0.0.1 51000 6432\r\n",   // two spaces
      "PROXY TCP4 2001:db8::1 10.0.0.1 51000 6432\r\n",    // v6 address under TCP4
      "PROXY TCP6 203.0.113.7 ::1 51000 6432\r\n",         // v4 address under TCP6
      "PROXY TCP4 203.0.113.7 10.0.0.1 65536 6432\r\n",    // port out of range
      "PROXY TCP4 203.0.113.7 10.0.0.1 -1 6432\r\n",       // not a number
      "PROXY TCP4 203.0.113.777 10.0.0.1 1 6432\r\n",      // not an address
      "PROXY UDP4 203.0.113.7 10.0.0.1 51000 6432\r\n",    // unknown protocol
      "PROXY TCP4 203.0.113.7 10.0.0.1 51000 6432\n",      // LF without CR
  };
  for (const char* b : bad) {
    INFO(b);
    Header h;
    std::string err;
    CHECK(parse(span_of(b), h, err) == Parse::Invalid);
    CHECK_FALSE(err.empty());
  }
  // No CRLF within 107 bytes: refused at the 107th byte, not waited on forever.
  std::string endless = "PROXY TCP4 " + std::string(200, '1');
  Header h;
  std::string err;
  CHECK(parse(span_of(endless.substr(0, 106)), h, err) == Parse::NeedMore);
  CHECK(parse(span_of(endless.substr(0, 107)), h, err) == Parse::Invalid);
  // A NUL can never be part of a v1 line.
  CHECK(parse(span_of(std::string("PROXY TCP4 \0", 12)), h, err) == Parse::Invalid);
}

TEST_CASE("PROXY v2: INET, INET6, LOCAL, UNSPEC and TLVs") {
  auto h = parse_all_splits(v2_inet());
  CHECK(h.version == 2);
  CHECK(h.has_address);
  CHECK(h.src_addr == "203.0.113.7");
  CHECK(h.dst_addr == "10.0.0.1");
  CHECK(h.src_port == 51000);
  CHECK(h.dst_port == 6432);

  std::string six(36, '\0');
  six[0] = '\x20', six[1] = '\x01', six[2] = '\x0d', six[3] = '\xb8', six[15] = '\x05';  // 2001:db8::5
  six[31] = '\x01';                                                                      // ::1
  six[32] = '\x12', six[33] = '\x34', six[34] = '\x00', six[35] = '\x50';
  h = parse_all_splits(v2(0x21, 0x21, six));
  CHECK(h.src_addr == "2001:db8::5");
  CHECK(h.dst_addr == "::1");
  CHECK(h.src_port == 0x1234);
  CHECK(h.dst_port == 80);

  // TLVs after the addresses are skipped; the length covers them.
  std::string tlv = std::string("\xCB\x00\x71\x07\x0A\x00\x00\x01\xC7\x38\x19\x20", 12) +
                    "\x04\x00\x03"
                    "abc";
  h = parse_all_splits(v2(0x21, 0x11, tlv));
  CHECK(h.src_addr == "203.0.113.7");
  CHECK(h.length == 16 + tlv.size());

  // LOCAL (the balancer's own health check): addresses, if any, are ignored.
  h = parse_all_splits(v2(0x20, 0x11, std::string(12, '\x01')));
  CHECK_FALSE(h.has_address);
  h = parse_all_splits(v2(0x20, 0x00, ""));
  CHECK_FALSE(h.has_address);
  // PROXY over UNSPEC or UNIX: no IP address to take.
  CHECK_FALSE(parse_all_splits(v2(0x21, 0x00, "")).has_address);
  CHECK_FALSE(parse_all_splits(v2(0x21, 0x31, std::string(216, 'x'))).has_address);
}

TEST_CASE("PROXY v2: bad version, command, family, lengths") {
  struct Bad {
    std::string bytes;
    const char* why;
  };
  std::vector<Bad> bad = {
      {v2(0x11, 0x11, std::string(12, '\0')), "version 1 in a v2 signature"},
      {v2(0x22, 0x11, std::string(12, '\0')), "command 2"},
      {v2(0x21, 0x41, std::string(12, '\0')), "family 4"},
      {v2(0x21, 0x13, std::string(12, '\0')), "transport 3"},
      {v2(0x21, 0x11, std::string(11, '\0')), "shorter than an IPv4 block"},
      {v2(0x21, 0x21, std::string(12, '\0')), "shorter than an IPv6 block"},
      {v2(0x21, 0x12, std::string(12, '\0')), "datagram"},
  };
  for (auto& b : bad) {
    INFO(b.why);
    Header h;
    std::string err;
    CHECK(parse(span_of(b.bytes), h, err) == Parse::Invalid);
  }
  // A length past the cap is refused as soon as the fixed part is in: no 64 KiB wait.
  std::string big = v2(0x21, 0x11, std::string(5000, '\0')).substr(0, 16);
  Header h;
  std::string err;
  CHECK(parse(span_of(big), h, err) == Parse::Invalid);
}

TEST_CASE("PROXY: what is not a header") {
  Header h;
  std::string err;
  std::string startup("\x00\x00\x00\x08\x04\xd2\x16\x2f", 8);  // an SSLRequest
  CHECK(parse(span_of(startup), h, err) == Parse::Invalid);
  CHECK_FALSE(looks_like_header(span_of(startup)));
  CHECK(looks_like_header(span_of("PRO")));
  CHECK(looks_like_header(span_of(v2_inet().substr(0, 5))));
  CHECK_FALSE(looks_like_header(span_of("PROXX")));
  CHECK(parse(span_of("GET / HTTP/1.1\r\n"), h, err) == Parse::Invalid);
}

// Server response bytes for MySQL unit tests: packets with running sequence ids, OK/EOF/ERR,
// column definitions and text rows.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "protocols/mysql/codec.hpp"

namespace sluice::test {

struct MysqlWire {
  std::string bytes;
  std::uint8_t seq = 1;
  MysqlWire& pkt(std::string_view payload) {
    seq = my::append_packets(bytes, payload, seq);
    return *this;
  }
  MysqlWire& ok(std::uint16_t st, std::uint8_t header = 0x00, std::uint64_t affected = 0, std::uint16_t warnings = 0,
                std::uint64_t insert_id = 0) {
    my::Ok o;
    o.header = header;
    o.status = st;
    o.affected_rows = affected;
    o.warnings = warnings;
    o.last_insert_id = insert_id;
    std::string p;
    my::build_ok(p, o, true);
    return pkt(p);
  }
  MysqlWire& eof(std::uint16_t st, std::uint16_t warnings = 0) {
    std::string p;
    my::build_eof(p, warnings, st);
    return pkt(p);
  }
  MysqlWire& err(std::uint16_t code) {
    std::string p;
    my::build_err(p, code, "HY000", "no");
    return pkt(p);
  }
  MysqlWire& coldef(std::string_view name) {
    std::string p;
    for (auto s :
         {std::string_view("def"), std::string_view("app"), std::string_view("t"), std::string_view("t"), name, name})
      my::put_lenenc_str(p, s);
    p += std::string("\x0c\x2d\x00\x0b\x00\x00\x00\x03\x00\x00\x00\x00", 13);
    return pkt(p);
  }
  MysqlWire& row(std::string_view v) {
    std::string p;
    my::put_lenenc_str(p, v);
    return pkt(p);
  }
};

}  // namespace sluice::test

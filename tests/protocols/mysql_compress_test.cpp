// The MySQL compressed protocol: frames byte for byte, stored and deflated, split at 16 MiB,
// read back across every split, and refused when they lie.
#include <doctest/doctest.h>

#include <string>

#include "protocols/mysql/compress.hpp"

using namespace sluice::my;

namespace {

std::string decode_all(const std::string& frames, std::size_t step, std::uint8_t& last_seq, bool& malformed) {
  std::string out, in;
  malformed = false;
  for (std::size_t pos = 0; pos < frames.size(); pos += step) {
    in.append(frames, pos, step);
    for (;;) {
      std::size_t used = 0;
      auto d = next_compressed(as_bytes(in), 1u << 26, out, last_seq, used);
      if (d == Decode::NeedMore) break;
      if (d == Decode::Malformed) {
        malformed = true;
        return out;
      }
      in.erase(0, used);
    }
  }
  CHECK(in.empty());
  return out;
}

}  // namespace

TEST_CASE("compressed protocol: short payloads are stored, long ones deflated, sequences continue") {
  std::string f;
  CHECK(append_compressed(f, std::string("\x01\x00\x00\x00\x0e", 5), 3) == 4);  // a COM_PING packet
  CHECK(f == std::string("\x05\x00\x00\x03\x00\x00\x00\x01\x00\x00\x00\x0e", 12));

  std::string rows;
  for (int i = 0; i < 2000; ++i) rows += "row " + std::to_string(i % 10) + ";";
  std::string z;
  CHECK(append_compressed(z, rows, 0) == 1);
  CHECK(z.size() < rows.size() / 4);
  CHECK(std::uint8_t(z[4]) + (std::uint8_t(z[5]) << 8) + (std::uint8_t(z[6]) << 16) == rows.size());
  for (std::size_t step : {std::size_t(1), std::size_t(7), std::size_t(1000), z.size()}) {
    std::uint8_t seq = 99;
    bool bad = false;
    CHECK(decode_all(z, step, seq, bad) == rows);
    CHECK_FALSE(bad);
    CHECK(seq == 0);
  }
}

TEST_CASE("compressed protocol: payloads past 16 MiB take several frames; incompressible ones are stored") {
  std::string big(kMaxPayload + 100, 'a');
  std::string z;
  CHECK(append_compressed(z, big, 5) == 7);
  std::uint8_t seq = 0;
  bool bad = false;
  CHECK(decode_all(z, 1 << 20, seq, bad) == big);
  CHECK(seq == 6);

  std::string noise;
  std::uint32_t x = 12345;
  for (int i = 0; i < 4096; ++i) {
    x = x * 1103515245u + 12345u;
    noise.push_back(static_cast<char>(x >> 24));
  }
  std::string s;
  append_compressed(s, noise, 0);
  CHECK(s.size() == noise.size() + 7);
  CHECK(s.substr(4, 3) == std::string(3, '\0'));  // stored
}

TEST_CASE("compressed protocol: frames that lie are malformed") {
  std::string rows(1000, 'q');
  std::string z;
  append_compressed(z, rows, 0);
  std::string wrong_size = z;
  wrong_size[4] = static_cast<char>(wrong_size[4] + 1);  // announces one byte more than inflates
  std::uint8_t seq = 0;
  bool bad = false;
  decode_all(wrong_size, z.size(), seq, bad);
  CHECK(bad);
  std::string garbage = z;
  garbage[9] = static_cast<char>(garbage[9] ^ 0x5a);
  decode_all(garbage, z.size(), seq, bad);
  CHECK(bad);
  std::string out;
  std::size_t used = 0;
  CHECK(next_compressed(as_bytes(z), 100, out, seq, used) == Decode::Malformed);  // over the limit
  // A header announcing 16 MiB is refused at once, not buffered until the payload arrives.
  std::string header("\xff\xff\xff\x00\x10\x00\x00", 7);
  CHECK(next_compressed(as_bytes(header), 1u << 20, out, seq, used) == Decode::Malformed);
}

TEST_CASE("compressed protocol with zstd: the same frames, each payload one zstd frame") {
  std::string f;
  CHECK(append_compressed(f, std::string("\x01\x00\x00\x00\x0e", 5), 3, Codec::Zstd) == 4);  // stored, as with zlib
  CHECK(f == std::string("\x05\x00\x00\x03\x00\x00\x00\x01\x00\x00\x00\x0e", 12));
  std::string rows;
  for (int i = 0; i < 2000; ++i) rows += "row " + std::to_string(i % 10) + ";";
  std::string z;
  CHECK(append_compressed(z, rows, 0, Codec::Zstd, 19) == 1);
  CHECK(z.size() < rows.size() / 4);
  CHECK(std::uint8_t(z[7]) == 0x28);  // zstd's frame magic, 0xFD2FB528 little-endian
  CHECK(std::uint8_t(z[10]) == 0xFD);
  std::string out;
  std::uint8_t seq = 9;
  std::size_t used = 0;
  CHECK(next_compressed(as_bytes(z), 1u << 26, out, seq, used, Codec::Zstd) == Decode::Ok);
  CHECK(out == rows);
  CHECK(used == z.size());
  // A zlib payload read as zstd (and the other way round) is malformed, never misread.
  std::string zl;
  append_compressed(zl, rows, 0);
  out.clear();
  CHECK(next_compressed(as_bytes(zl), 1u << 26, out, seq, used, Codec::Zstd) == Decode::Malformed);
  CHECK(next_compressed(as_bytes(z), 1u << 26, out, seq, used, Codec::Zlib) == Decode::Malformed);
  // A frame that decompresses to less than its header announces is malformed.
  std::string lying = z;
  lying[4] = static_cast<char>(std::uint8_t(lying[4]) + 1);
  out.clear();
  CHECK(next_compressed(as_bytes(lying), 1u << 26, out, seq, used, Codec::Zstd) == Decode::Malformed);
}

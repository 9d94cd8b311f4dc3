// The MySQL compressed protocol (CLIENT_COMPRESS with zlib, CLIENT_ZSTD_COMPRESSION_ALGORITHM with
// zstd: the same frames, each payload one independent zlib stream or zstd frame), sans-io. After
// the login's OK, every
// byte of the ordinary packet stream travels inside frames: a 7-byte header (3-byte length of the
// frame's payload, 1-byte compressed sequence id, 3-byte length before compression, 0 when the
// payload is stored uncompressed) and the payload. A frame may hold several packets or part of
// one; the compressed sequence restarts at 0 with each command, and replies continue it.
// Reference: MySQL "Client/Server Protocol", Compression.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "protocols/mysql/codec.hpp"

namespace sluice::my {

// Payloads shorter than this are stored, not compressed (as servers do).
inline constexpr std::size_t kMinCompressLength = 50;

enum class Codec : std::uint8_t { Zlib, Zstd };
// zstd's level when the client asks for none (MySQL's default); levels are clamped to 1..22.
inline constexpr int kDefaultZstdLevel = 3;

// Appends `bytes` as frames starting at compressed sequence `seq`; returns the sequence that
// follows the last frame. `level`: zstd only.
std::uint8_t append_compressed(std::string& out, std::string_view bytes, std::uint8_t seq, Codec codec = Codec::Zlib,
                               int level = kDefaultZstdLevel);

// Decodes one frame off the front of `in`, appending its bytes to `out`. `seq` = the frame's
// sequence id, `consumed` = bytes of `in` used. Malformed: a frame that does not inflate to its
// announced size, or whose header announces more than `max_len` bytes (known from the header
// alone, before the payload is waited for).
Decode next_compressed(Bytes in, std::size_t max_len, std::string& out, std::uint8_t& seq, std::size_t& consumed,
                       Codec codec = Codec::Zlib);

}  // namespace sluice::my

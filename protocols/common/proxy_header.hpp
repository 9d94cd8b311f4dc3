// The PROXY protocol header (HAProxy's spec, versions 1 and 2) that a load balancer sends before
// the client's first byte to say who the client really is. Sans-io: parse() looks at the bytes
// received so far and says whether they hold a whole header, need more, or cannot be one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace sluice::proxy {

// v1 is at most 107 bytes (spec 2.1). v2 may carry up to 64 KiB of TLVs; Sluice reads none of
// them and refuses a header longer than this (AWS, GCP and HAProxy send well under 1 KiB).
constexpr std::size_t kMaxV1 = 107;
constexpr std::size_t kMaxV2 = 4096;

enum class Parse { NeedMore, Done, Invalid };

struct Header {
  int version = 0;         // 1 or 2
  std::size_t length = 0;  // bytes the header takes, TLVs included
  // False for v1 "UNKNOWN", v2 LOCAL, and v2 PROXY over an unspecified or UNIX family: the
  // connection's own addresses stand (spec 2.1, 2.2).
  bool has_address = false;
  std::string src_addr, dst_addr;  // textual (inet_ntop), IPv4 or IPv6
  std::uint16_t src_port = 0, dst_port = 0;
};

// Parses the start of `in`. Done: `out` is filled and out.length bytes are the header. Invalid:
// `error` says why (the connection must be closed: spec 2 forbids guessing).
Parse parse(std::span<const std::uint8_t> in, Header& out, std::string& error);

// Whether `in` could be the start of a header (a prefix of "PROXY " or of the v2 signature),
// for telling a header from an ordinary client's first bytes.
bool looks_like_header(std::span<const std::uint8_t> in);

}  // namespace sluice::proxy

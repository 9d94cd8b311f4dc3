// RESP2, the Redis serialization protocol (what Redis and Valkey speak): commands as arrays of
// bulk strings, and replies. Sans-io: encode() appends a command's bytes; decode() looks at the
// bytes received so far and says whether they hold one whole reply, need more, or cannot be one.
// The result cache's shared second-level store (src/net/redis_client) is the only user.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::resp {

// *<n>\r\n then $<len>\r\n<bytes>\r\n per argument.
void encode(std::string& out, std::span<const std::string_view> args);
inline void encode(std::string& out, std::initializer_list<std::string_view> args) {
  encode(out, std::span<const std::string_view>(args.begin(), args.size()));
}

struct Reply {
  enum class Kind { Simple, Error, Integer, Bulk, Nil, Array };
  Kind kind = Kind::Nil;
  std::string text;          // Simple, Error, Bulk
  std::int64_t integer = 0;  // Integer
  std::vector<Reply> items;  // Array (a nil array is Nil)
};

enum class Decode { Ok, NeedMore, Malformed };

struct Limits {
  std::size_t max_bulk = 64u << 20;  // bytes of one bulk string
  std::size_t max_line = 4096;       // a simple string, error or length line
  std::size_t max_items = 1024;      // elements of one array
  int max_depth = 4;                 // arrays within arrays
};

// Ok: `out` holds the first reply of `in`, which took `used` bytes. Malformed: `error` says why
// (the connection cannot be trusted after it).
Decode decode(std::string_view in, Reply& out, std::size_t& used, std::string& error, const Limits& limits = {});

}  // namespace sluice::resp

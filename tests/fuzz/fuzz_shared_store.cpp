// libFuzzer target: what the cache's shared store reads back from Redis. The bytes are a stream
// of RESP replies (protocols/common/resp, small bounds); each bulk reply, and the whole input, is
// also read as a shared-store record (cache::decode_shared). A record that decodes must encode
// back to the same bytes; nothing may crash, hang or read out of bounds.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "protocols/common/resp.hpp"
#include "src/cache/shared_entry.hpp"

namespace {
void record(std::string_view bytes) {
  auto e = sluice::cache::decode_shared(bytes, 4096);
  if (e && sluice::cache::encode_shared(*e) != bytes) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  record(in);
  sluice::resp::Limits limits;
  limits.max_bulk = 4096;
  limits.max_line = 256;
  limits.max_items = 16;
  limits.max_depth = 3;
  std::size_t pos = 0;
  while (pos < in.size()) {
    sluice::resp::Reply r;
    std::size_t used = 0;
    std::string error;
    auto d = sluice::resp::decode(in.substr(pos), r, used, error, limits);
    if (d != sluice::resp::Decode::Ok) break;
    if (used == 0 || used > in.size() - pos) std::abort();
    if (r.kind == sluice::resp::Reply::Kind::Bulk) record(r.text);
    pos += used;
  }
  return 0;
}

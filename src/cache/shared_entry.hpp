// One cached answer as the shared second-level store (Redis; src/state/shared_cache) holds it:
// the whole cache key (the store's key is a digest of it), the cluster and tables it read,
// whether a replica gave it, the position its data is at least as new as, when it expires (Unix
// milliseconds, so another instance computes what is left), and the answer's bytes. A plain
// length-prefixed binary record; decode() refuses anything malformed or over its bounds.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "src/replication/position.hpp"

namespace sluice::cache {

struct SharedEntry {
  std::string key, cluster;
  std::vector<std::string> tables;
  bool replica = false;
  replication::Position data;
  std::int64_t expires_unix_ms = 0;
  std::string value;
};

std::string encode_shared(const SharedEntry& e);
// nullopt: not a record of this version, malformed, or a value over `max_value` bytes.
std::optional<SharedEntry> decode_shared(std::string_view bytes, std::size_t max_value);

}  // namespace sluice::cache

// Fields both front ends write into an online upgrade's client record (src/app/upgrade.hpp,
// net/record.hpp): written and read here once.
#pragma once

#include "src/net/record.hpp"
#include "src/replication/position.hpp"

namespace sluice::frontend {

// A read-your-writes position (empty: none).
inline void write_position(net::RecordWriter& w, const replication::Position& p) {
  w.u32(static_cast<std::uint32_t>(p.parts.size()));
  for (auto& [domain, seq] : p.parts) {
    w.u32(domain);
    w.u64(seq);
  }
}

// What write_position() wrote; a count past the record's end stops at the first failed read.
inline replication::Position read_position(net::RecordReader& r) {
  replication::Position p;
  for (std::uint32_t i = 0, n = r.u32(); i < n && r.ok(); ++i) {
    std::uint32_t domain = r.u32();
    p.parts.emplace_back(domain, r.u64());
  }
  return p;
}

}  // namespace sluice::frontend

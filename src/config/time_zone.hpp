// Time zones for [[rules]] time windows: an IANA name read from the system's tz database (TZif
// files under /usr/share/zoneinfo, or $TZDIR; RFC 8536), "UTC", or a fixed "+HH:MM" / "-HH:MM".
// Loaded once at configuration load; asking for an offset is a binary search, no system call.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::config {

class TimeZone {
 public:
  // Null, with `error` set, when the name is unknown or its file is not a valid TZif file.
  static std::shared_ptr<const TimeZone> load(const std::string& name, std::string& error);
  // From a TZif file's bytes (version 2 or later: the 64-bit block is used).
  static std::shared_ptr<const TimeZone> parse(std::string_view tzif, std::string& error);
  static std::shared_ptr<const TimeZone> fixed(std::int32_t offset_seconds);

  // Seconds east of UTC in force at `utc_seconds` (Unix time). Past the file's last transition
  // the last offset stays (Debian's tz files list transitions up to 2037).
  std::int32_t offset_at(std::int64_t utc_seconds) const;

 private:
  std::vector<std::int64_t> times_;    // transitions, ascending
  std::vector<std::int32_t> offsets_;  // the offset from each transition on
  std::int32_t initial_ = 0;           // before the first transition
};

}  // namespace sluice::config

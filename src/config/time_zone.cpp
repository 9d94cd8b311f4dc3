// Time zones from TZif files (time_zone.hpp). RFC 8536, section 3: a header, a version 1 data
// block with 32-bit times, and (version 2 and later) a second header and a 64-bit data block.
#include "src/config/time_zone.hpp"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace sluice::config {
namespace {

std::uint32_t be32(const unsigned char* p) {
  return std::uint32_t(p[0]) << 24 | std::uint32_t(p[1]) << 16 | std::uint32_t(p[2]) << 8 | p[3];
}
std::int64_t be64(const unsigned char* p) {
  return static_cast<std::int64_t>(std::uint64_t(be32(p)) << 32 | be32(p + 4));
}

struct Header {
  char version = 0;
  std::uint32_t isutcnt = 0, isstdcnt = 0, leapcnt = 0, timecnt = 0, typecnt = 0, charcnt = 0;
};

bool header(std::string_view s, std::size_t at, Header& h) {
  if (s.size() < at + 44 || s.substr(at, 4) != "TZif") return false;
  auto p = reinterpret_cast<const unsigned char*>(s.data() + at);
  h.version = static_cast<char>(p[4]);
  h.isutcnt = be32(p + 20), h.isstdcnt = be32(p + 24), h.leapcnt = be32(p + 28);
  h.timecnt = be32(p + 32), h.typecnt = be32(p + 36), h.charcnt = be32(p + 40);
  return h.typecnt > 0 && h.typecnt <= 256 && h.timecnt <= 100'000 && h.charcnt <= 100'000 && h.leapcnt <= 10'000 &&
         h.isutcnt <= 256 && h.isstdcnt <= 256;
}

std::size_t block_size(const Header& h, std::size_t time_size) {
  return h.timecnt * time_size + h.timecnt + h.typecnt * 6 + h.charcnt + h.leapcnt * (time_size + 4) + h.isstdcnt +
         h.isutcnt;
}

}  // namespace

std::shared_ptr<const TimeZone> TimeZone::fixed(std::int32_t offset_seconds) {
  auto z = std::make_shared<TimeZone>();
  z->initial_ = offset_seconds;
  return z;
}

std::shared_ptr<const TimeZone> TimeZone::parse(std::string_view s, std::string& error) {
  Header h1;
  if (!header(s, 0, h1)) {
    error = "not a TZif file";
    return nullptr;
  }
  if (h1.version < '2') {
    error = "TZif version 1 files are not supported";
    return nullptr;
  }
  std::size_t second = 44 + block_size(h1, 4);
  Header h;
  if (!header(s, second, h) || s.size() < second + 44 + block_size(h, 8)) {
    error = "truncated TZif file";
    return nullptr;
  }
  auto p = reinterpret_cast<const unsigned char*>(s.data() + second + 44);
  auto times = p;
  auto idx = times + h.timecnt * 8;
  auto types = idx + h.timecnt;
  auto z = std::make_shared<TimeZone>();
  auto offset_of = [&](std::size_t type) { return static_cast<std::int32_t>(be32(types + type * 6)); };
  for (std::uint32_t i = 0; i < h.timecnt; ++i) {
    if (idx[i] >= h.typecnt) {
      error = "TZif transition names an unknown type";
      return nullptr;
    }
    std::int64_t t = be64(times + i * 8);
    if (!z->times_.empty() && t <= z->times_.back()) {
      error = "TZif transitions are not ascending";
      return nullptr;
    }
    z->times_.push_back(t);
    z->offsets_.push_back(offset_of(idx[i]));
  }
  // RFC 8536 3.2: local time before the first transition is type 0's.
  z->initial_ = offset_of(0);
  return z;
}

std::shared_ptr<const TimeZone> TimeZone::load(const std::string& name, std::string& error) {
  if (name == "UTC" || name == "Etc/UTC" || name == "Z") return fixed(0);
  if (name.size() == 6 && (name[0] == '+' || name[0] == '-') && name[3] == ':') {
    auto digit = [&](std::size_t i) { return name[i] >= '0' && name[i] <= '9' ? name[i] - '0' : -100; };
    int hh = digit(1) * 10 + digit(2), mm = digit(4) * 10 + digit(5);
    if (hh >= 0 && hh <= 14 && mm >= 0 && mm < 60) return fixed((name[0] == '-' ? -1 : 1) * (hh * 3600 + mm * 60));
  }
  if (name.empty() || name.size() > 255 || name[0] == '/' || name.find("..") != std::string::npos) {
    error = "expected an IANA time zone name such as \"Europe/Berlin\", \"UTC\" or \"+02:00\"";
    return nullptr;
  }
  const char* dir = std::getenv("TZDIR");
  std::string path = std::string(dir && *dir ? dir : "/usr/share/zoneinfo") + "/" + name;
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    error = "unknown time zone (no " + path + ")";
    return nullptr;
  }
  std::ostringstream bytes;
  bytes << f.rdbuf();
  auto z = parse(bytes.str(), error);
  if (!z) error = path + ": " + error;
  return z;
}

std::int32_t TimeZone::offset_at(std::int64_t utc_seconds) const {
  auto it = std::upper_bound(times_.begin(), times_.end(), utc_seconds);
  if (it == times_.begin()) return initial_;
  return offsets_[static_cast<std::size_t>(it - times_.begin() - 1)];
}

}  // namespace sluice::config

// MySQL client session: [[rules]] mirror copies. A mirrored COM_QUERY's answer is captured as the
// client got it, summed (row count or affected rows, and a digest of the rows) and handed with
// the statement to the mirror, which runs it on its cluster and compares.
#include "src/frontend/mysql/client_session.hpp"

namespace sluice::frontend::mysql {

bool Session::prepare_mirror() {
  const auto& r = w().rule_;
  auto mirror = ctx_.mirrors.find(r.mirror);
  if (!mirror || mirror->protocol() != config::Protocol::Mysql) return false;
  // The command's text, as analysed (its classification may not have been needed before).
  if (!r.mirror_writes && !w().analysis_.classification(write_functions()).read()) return false;
  w().mirror_ = std::move(mirror);
  w().mirror_capture_.clear();
  return true;
}

void Session::offer_mirror(const std::string* answer, bool relayed) {
  auto mirror = std::move(w().mirror_);
  const std::string fingerprint = w().analysis_.fingerprint();
  if (!relayed || server_lost_ || !answer || answer->size() > capture_limit_) {
    mirror->skip(fingerprint);  // no whole answer to compare with
    return;
  }
  // The answer's packets: [3-byte length][sequence][payload] (protocol 14.1.2).
  router::AnswerSum sum;
  std::string_view b(*answer);
  std::size_t pos = 0;
  auto next = [&](std::string_view& payload) {
    if (pos + 4 > b.size()) return false;
    std::size_t len = static_cast<std::uint8_t>(b[pos]) | static_cast<std::uint8_t>(b[pos + 1]) << 8 |
                      static_cast<std::size_t>(static_cast<std::uint8_t>(b[pos + 2])) << 16;
    if (pos + 4 + len > b.size()) return false;
    payload = b.substr(pos + 4, len);
    pos += 4 + len;
    return true;
  };
  std::string_view p;
  if (!next(p) || p.empty()) {
    mirror->skip(fingerprint);
    return;
  }
  auto first = static_cast<std::uint8_t>(p[0]);
  const bool deprecate_eof = (caps_ & my::cap::DEPRECATE_EOF) != 0;
  if (first == 0xFF) {
    sum.error = true;
  } else if (first == 0x00) {
    my::Ok ok;
    if (my::parse_ok(my::as_bytes(p), (caps_ & my::cap::SESSION_TRACK) != 0, ok)) sum.rows = ok.affected_rows;
  } else {
    my::Reader rd(my::as_bytes(p));
    std::uint64_t columns = rd.lenenc();
    for (std::uint64_t i = 0; i < columns + (deprecate_eof ? 0 : 1); ++i)
      if (!next(p)) return mirror->skip(fingerprint);
    while (next(p)) {
      if (p.empty()) break;
      auto f = static_cast<std::uint8_t>(p[0]);
      if (f == 0xFF) {
        sum.error = true;
        break;
      }
      if (f == 0xFE && (deprecate_eof ? p.size() < 0xFFFFFF : p.size() < 9)) break;  // EOF / OK: the last row
      sum.row(p);
      ++sum.rows;
    }
  }
  router::MirrorCopy copy;
  copy.creds = creds_;
  copy.database = schema_;
  copy.text = std::string_view(io_.payload()).substr(1);
  copy.fingerprint = fingerprint;
  copy.answer = sum;
  mirror->offer(std::move(copy));
}

}  // namespace sluice::frontend::mysql

// What a PostgreSQL relay follows for the requests it has in flight: a request (a simple Query,
// or an extended-protocol batch up to its Sync) gets, when the session names them before queueing
// it, the query digest of its statement and a mirror copy of it; the relay then adds the rows of
// its CommandCompletes, hashes its DataRows (when mirrored), notes an ErrorResponse, and at its
// ReadyForQuery records the digest and hands the copy, with the answer's sum, to the mirror.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "src/observe/digests.hpp"
#include "src/observe/stats.hpp"
#include "src/router/mirror.hpp"

namespace sluice::frontend::pg {

class RequestTrail {
 public:
  // The digest for the next request queued (the first statement named since the last one wins).
  void next(std::shared_ptr<observe::Digest> d, observe::DigestRoute route) {
    auto& n = pending();
    if (!n.digest) n.digest = std::move(d), n.route = route;
  }
  // A copy of the next request for `mirror`.
  void next_mirror(std::shared_ptr<router::Mirror> mirror, router::MirrorCopy copy) {
    auto& n = pending();
    if (!n.mirror) n.mirror = std::move(mirror), n.copy = std::move(copy);
  }
  bool armed() const { return next_ != nullptr; }
  bool digest_armed() const { return next_ && next_->digest; }
  // A request was queued with what was named: its id (never 0), for its entry.
  std::uint16_t open() {
    if (++last_id_ == 0) last_id_ = 1;
    auto n = std::move(next_);
    if (n->mirror) ++hashing_;
    slots_.push_back({last_id_, observe::Clock::now(), {}, std::move(n)});
    return last_id_;
  }
  bool any() const { return !slots_.empty(); }
  bool hashing() const { return hashing_ > 0; }
  // Request `id`'s CommandComplete (its tag: "SELECT 5", "INSERT 0 3", ...), DataRow (its body)
  // or ErrorResponse.
  void command_complete(std::uint16_t id, std::string_view tag) {
    if (auto* s = find(id)) s->sum.rows += router::AnswerSum::tag_rows(tag);
  }
  void data_row(std::uint16_t id, std::string_view body) {
    if (auto* s = find(id); s && s->named->mirror) s->sum.row(body);
  }
  void error(std::uint16_t id) {
    if (auto* s = find(id)) s->sum.error = true;
  }
  // Request `id` ended (its ReadyForQuery): the digest recorded, the copy handed over.
  void close(std::uint16_t id) {
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      if (slots_[i].id != id) continue;
      auto& s = slots_[i];
      auto& n = *s.named;
      if (n.digest) n.digest->record(observe::micros_since(s.start), s.sum.rows, s.sum.error, n.route);
      if (n.mirror) {
        n.copy.answer = s.sum;
        n.mirror->offer(std::move(n.copy));
        --hashing_;
      }
      slots_.erase(slots_.begin() + static_cast<std::ptrdiff_t>(i));
      return;
    }
  }
  // The requests in flight are gone unanswered (a server lost, a reset): nothing recorded.
  void clear() {
    slots_.clear();
    next_.reset();
    hashing_ = 0;
  }

 private:
  // What the session named for a request (held on the heap: an idle session holds a null).
  struct Named {
    std::shared_ptr<observe::Digest> digest;
    observe::DigestRoute route = observe::DigestRoute::Primary;
    std::shared_ptr<router::Mirror> mirror;
    router::MirrorCopy copy;
  };
  struct Slot {
    std::uint16_t id;
    observe::Clock::time_point start;
    router::AnswerSum sum;
    std::shared_ptr<Named> named;
  };
  Named& pending() {
    if (!next_) next_ = std::make_shared<Named>();
    return *next_;
  }
  Slot* find(std::uint16_t id) {
    for (auto& s : slots_)
      if (s.id == id) return &s;
    return nullptr;
  }
  std::vector<Slot> slots_;
  std::shared_ptr<Named> next_;
  std::uint16_t hashing_ = 0, last_id_ = 0;
};

}  // namespace sluice::frontend::pg

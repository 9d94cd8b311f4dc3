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
  RequestTrail() = default;
  RequestTrail(const RequestTrail& o) : s_(o.s_ ? std::make_unique<State>(*o.s_) : nullptr) {}
  RequestTrail& operator=(const RequestTrail& o) {
    s_ = o.s_ ? std::make_unique<State>(*o.s_) : nullptr;
    return *this;
  }

  // The digest for the next request queued (the first statement named since the last one wins).
  void next(std::shared_ptr<observe::Digest> d, observe::DigestRoute route, observe::SlowWho who = {}) {
    auto& n = pending();
    if (!n.digest) n.digest = std::move(d), n.route = route, n.who = std::move(who);
  }
  // A copy of the next request for `mirror`.
  void next_mirror(std::shared_ptr<router::Mirror> mirror, router::MirrorCopy copy) {
    auto& n = pending();
    if (!n.mirror) n.mirror = std::move(mirror), n.copy = std::move(copy);
  }
  bool armed() const { return s_ && s_->next; }
  bool digest_armed() const { return armed() && s_->next->digest; }
  // A request was queued with what was named: its id (never 0), for its entry.
  std::uint16_t open() {
    auto& st = *s_;
    if (++st.last_id == 0) st.last_id = 1;
    auto n = std::move(st.next);
    if (n->mirror) ++st.hashing;
    st.slots.push_back({st.last_id, observe::Clock::now(), {}, std::move(n)});
    return st.last_id;
  }
  bool any() const { return s_ && !s_->slots.empty(); }
  bool idle() const { return !s_ || (s_->slots.empty() && !s_->next); }
  bool hashing() const { return s_ && s_->hashing > 0; }
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
    if (!s_) return;
    auto& slots = s_->slots;
    for (std::size_t i = 0; i < slots.size(); ++i) {
      if (slots[i].id != id) continue;
      auto& s = slots[i];
      auto& n = *s.named;
      if (n.digest) {
        auto us = observe::micros_since(s.start);
        n.digest->record(us, s.sum.rows, s.sum.error, n.route);
        observe::note_slow(*n.digest, us, s.sum.rows, s.sum.error, n.who);
      }
      if (n.mirror) {
        n.copy.answer = s.sum;
        n.mirror->offer(std::move(n.copy));
        --s_->hashing;
      }
      slots.erase(slots.begin() + static_cast<std::ptrdiff_t>(i));
      return;
    }
  }
  // The requests in flight are gone unanswered (a server lost, a reset): nothing recorded. The
  // state goes too: an idle session holds one null pointer.
  void clear() { s_.reset(); }

 private:
  // What the session named for a request.
  struct Named {
    std::shared_ptr<observe::Digest> digest;
    observe::DigestRoute route = observe::DigestRoute::Primary;
    observe::SlowWho who;  // for the slow-query log
    std::shared_ptr<router::Mirror> mirror;
    router::MirrorCopy copy;
  };
  struct Slot {
    std::uint16_t id;
    observe::Clock::time_point start;
    router::AnswerSum sum;
    std::shared_ptr<Named> named;
  };
  struct State {
    std::vector<Slot> slots;
    std::shared_ptr<Named> next;
    std::uint16_t hashing = 0, last_id = 0;
  };
  Named& pending() {
    if (!s_) s_ = std::make_unique<State>();
    if (!s_->next) s_->next = std::make_shared<Named>();
    return *s_->next;
  }
  Slot* find(std::uint16_t id) {
    if (!s_) return nullptr;
    for (auto& s : s_->slots)
      if (s.id == id) return &s;
    return nullptr;
  }
  std::unique_ptr<State> s_;  // made when a session first names something
};

}  // namespace sluice::frontend::pg

// Session state a client leaves on its server session in transaction pooling: which client
// statements may change it (a cheap look at every Query and Parse), and what their effects do to
// the client's carried parameters, its pins and the server connection's known state
// (Relay::apply_effects; the statements themselves are recognized by src/sql/session_sql).
// LISTEN and UNLISTEN count as parameters do: at once outside a transaction, at its COMMIT inside
// one (savepoints respected); the session gets the client's notifications from the pool's
// listening connection (src/pool/notify_hub) for the channels in listening().
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <cctype>
#include <string_view>

#include "src/frontend/postgres/relay.hpp"

namespace sluice::frontend::pg {

// Cheap pre-check so ordinary queries never pay for statement splitting: the first word must be
// one that may change session state, or a SELECT-like statement calling set_config or an advisory
// lock function, or the text holds more than one statement. `tx_words`: COMMIT and ROLLBACK
// matter (SETs of the transaction wait for them).
namespace {
// A word of up to 12 ASCII letters, lower case, packed into two integers: one comparison per
// keyword instead of a loop over its letters.
struct Word {
  std::uint64_t lo = 0, hi = 0;
  constexpr bool operator==(const Word&) const = default;
};
consteval Word word(std::string_view w) {
  Word k;
  for (std::size_t i = 0; i < w.size(); ++i) (i < 8 ? k.lo : k.hi) |= std::uint64_t(w[i]) << (8 * (i % 8));
  return k;
}
}  // namespace

bool may_change_session(std::string_view q, bool tx_words) {
  std::size_t i = 0;
  while (i < q.size() && (q[i] == ' ' || q[i] == '\n' || q[i] == '\t' || q[i] == '\r')) ++i;
  if (i == q.size()) return false;
  if (q[i] == '/' || q[i] == '-') return true;  // leading comment: look closer
  // The first word, up to 13 letters (a longer one is no keyword: the 13th spoils the match).
  Word w;
  std::size_t j = i;
  if (q.size() - i >= 8) {
    // Eight bytes at once: the letters among them (ASCII, either case) found bit-wise.
    constexpr std::uint64_t kOnes = 0x0101010101010101ull, kHigh = 0x8080808080808080ull;
    std::uint64_t v;
    std::memcpy(&v, q.data() + i, 8);  // little-endian: byte 0 is the lowest
    const std::uint64_t lower = v | (0x20 * kOnes), x = lower & ~kHigh;
    const std::uint64_t letters = ((x + (0x80 - 'a') * kOnes) & ~(x + (0x80 - 'z' - 1) * kOnes) & ~lower) & kHigh;
    const std::uint64_t others = ~letters & kHigh;
    const auto n = others ? static_cast<std::size_t>(__builtin_ctzll(others) / 8) : 8;
    w.lo = n == 8 ? lower : lower & ((std::uint64_t{1} << (8 * n)) - 1);
    j = i + n;
    if (n < 8) goto matched;
  }
  for (; j < q.size() && j - i < 13; ++j) {
    const auto c = static_cast<unsigned char>(q[j] | 0x20);
    if (c < 'a' || c > 'z') break;
    if (j - i < 12) (j - i < 8 ? w.lo : w.hi) |= std::uint64_t(c) << (8 * ((j - i) % 8));
    else w.hi = ~std::uint64_t{0};
  }
matched:
  bool scan_calls = false;
  switch (w.lo & 0xff) {
    case 's':
      if (w == word("set")) return true;
      if (tx_words && w == word("savepoint")) return true;
      scan_calls = w == word("select");
      break;
    case 'r':
      if (w == word("reset")) return true;
      if (tx_words && (w == word("rollback") || w == word("release"))) return true;
      break;
    case 'd':
      if (w == word("discard") || w == word("deallocate") || w == word("declare") || w == word("drop") ||
          w == word("do"))
        return true;
      break;
    case 'l':
      if (w == word("listen")) return true;
      break;
    case 'u':
      if (w == word("unlisten")) return true;
      break;
    case 'n':
      if (w == word("notify")) return true;
      break;
    case 'p':
      if (w == word("prepare")) return true;
      break;
    case 'c':
      if (w == word("close") || w == word("create")) return true;
      if (tx_words && w == word("commit")) return true;
      break;
    case 'e':
      if (tx_words && w == word("end")) return true;
      break;
    case 'a':
      if (tx_words && w == word("abort")) return true;
      break;
    case 'w':
      scan_calls = w == word("with");
      break;
    case 'v':
      scan_calls = w == word("values");
      break;
    default:
      break;
  }
  if (scan_calls && q.find('(', j) != std::string_view::npos) {
    // set_config( or pg_[try_]advisory_... or pg_notify(: "_config" / "_advisory" / "_notify" in any case.
    for (std::size_t k = q.find('_', j); k != std::string_view::npos; k = q.find('_', k + 1)) {
      auto after = [&](std::string_view word) {
        if (k + 1 + word.size() > q.size()) return false;
        for (std::size_t m = 0; m < word.size(); ++m)
          if ((q[k + 1 + m] | 0x20) != word[m]) return false;
        return true;
      };
      if (after("config") || after("advisory") || after("notify")) return true;
    }
  }
  // Several statements: a ';' followed by anything but blanks.
  auto semi = q.find(';', j);
  if (semi == std::string_view::npos) return false;
  for (std::size_t k = semi + 1; k < q.size(); ++k)
    if (q[k] != ' ' && q[k] != '\t' && q[k] != '\r' && q[k] != '\n' && q[k] != ';') return true;
  return false;
}

namespace {
// A parameter name that can go into SET as it is.
bool plain_param_name(std::string_view n) {
  if (n.empty() || n.size() > 63) return false;
  for (char c : n)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.') return false;
  return true;
}
}  // namespace

// Session effects of a request that succeeded, in order. `before`: the transaction status before
// it. Parameter changes inside a transaction wait in deferred_ for its COMMIT (a ROLLBACK, or a
// COMMIT of a failed transaction, drops them).
void Relay::apply_effects(const std::vector<sql::SessionEffect>& effects, pool::ServerConn& server, char before) {
  bool in_tx = before != 'I', failed = before == 'E';
  for (auto& e : effects) {
    switch (e.command) {
      case sql::SessionCommand::SetSearchPath:
      case sql::SessionCommand::ResetSearchPath:
      case sql::SessionCommand::SetParam:
      case sql::SessionCommand::ResetParam:
        if (in_tx) deferred_.push_back(e);
        else apply_param(e, server);
        break;
      case sql::SessionCommand::Begin:
        in_tx = true;
        failed = false;
        break;
      case sql::SessionCommand::Commit:
        if (!failed)
          for (auto& d : deferred_)
            if (d.command != sql::SessionCommand::Savepoint) apply_param(d, server);
        deferred_.clear();
        in_tx = failed = false;
        break;
      // Savepoints are markers among the deferred changes: ROLLBACK TO drops what follows its
      // marker (which stays), RELEASE drops the marker and later ones and keeps the changes.
      case sql::SessionCommand::Savepoint:
        if (in_tx) deferred_.push_back(e);
        break;
      case sql::SessionCommand::RollbackTo:
      case sql::SessionCommand::Release: {
        auto it = std::find_if(deferred_.rbegin(), deferred_.rend(), [&](const sql::SessionEffect& d) {
          return d.command == sql::SessionCommand::Savepoint && d.name == e.name;
        });
        // Not among the markers: the savepoint came before any deferred change (markers are only
        // recorded once there is one), so everything deferred follows it.
        auto marker = it == deferred_.rend() ? deferred_.begin() : std::prev(it.base());
        if (e.command == sql::SessionCommand::RollbackTo) {
          deferred_.erase(it == deferred_.rend() ? marker : std::next(marker), deferred_.end());
          failed = false;  // the transaction goes on
          if (!pins_.empty()) may_unpin_ = true;
        } else {
          deferred_.erase(
              std::remove_if(marker, deferred_.end(),
                             [](const sql::SessionEffect& d) { return d.command == sql::SessionCommand::Savepoint; }),
              deferred_.end());
        }
        break;
      }
      case sql::SessionCommand::Rollback:
        deferred_.clear();
        in_tx = failed = false;
        if (!pins_.empty()) may_unpin_ = true;  // a LISTEN or temporary table of the transaction is gone
        break;
      case sql::SessionCommand::Listen:
        server.listening = true;
        [[fallthrough]];
      case sql::SessionCommand::Unlisten:
        if (in_tx) deferred_.push_back(e);
        else apply_param(e, server);
        break;
      case sql::SessionCommand::Notify:
        notified_ = true;
        break;
      case sql::SessionCommand::Pin:
        if (pins_.find(e.value) == std::string::npos) pins_ += (pins_.empty() ? "" : ", ") + e.value;
        break;
      case sql::SessionCommand::MayUnpin:
        if (!pins_.empty()) may_unpin_ = true;
        break;
      case sql::SessionCommand::Untracked:
        untracked_ = true;
        break;
      case sql::SessionCommand::DiscardAll:
      case sql::SessionCommand::ResetAll:
        // Reported parameters come back through ParameterStatus; the rest return to defaults.
        client_params.erase_if([&](auto& kv) { return !server.initial.find(kv.first); });
        server.params.erase_if([&](auto& kv) { return !server.initial.find(kv.first); });
        if (e.command == sql::SessionCommand::ResetAll) break;
        pins_.clear();  // DISCARD ALL: locks, LISTEN, temporary tables, cursors, prepared: all gone
        may_unpin_ = untracked_ = false;
        if (!listening_.empty()) listening_.clear(), listen_changed_ = true;
        server.listening = false;
        [[fallthrough]];
      case sql::SessionCommand::DeallocateAll:
        server.prepared.clear();
        statements_.clear();
        break;
      case sql::SessionCommand::None:
        break;
    }
  }
}

void Relay::apply_param(const sql::SessionEffect& e, pool::ServerConn& server) {
  switch (e.command) {
    case sql::SessionCommand::SetSearchPath:
      client_params.set("search_path", e.value);
      server.params.set("search_path", e.value);
      break;
    case sql::SessionCommand::ResetSearchPath:
      client_params.erase("search_path");
      server.params.erase("search_path");
      break;
    case sql::SessionCommand::SetParam: {
      if (!plain_param_name(e.name)) {
        untracked_ = true;
        break;
      }
      std::string v = std::string(1, pool::kRawSqlValue) + e.value;  // re-applied as written
      client_params.set(e.name, v);
      server.params.set(e.name, v);
      break;
    }
    case sql::SessionCommand::ResetParam:
      client_params.erase(e.name);
      server.params.erase(e.name);
      break;
    case sql::SessionCommand::Listen:
      listening_.insert(e.name);
      listen_changed_ = true;
      break;
    case sql::SessionCommand::Unlisten:
      if (e.name == "*") listening_.clear();
      else listening_.erase(e.name);
      listen_changed_ = true;
      break;
    default:
      break;
  }
}

}  // namespace sluice::frontend::pg

// Process-wide registry of prepared statements by content, so that equal statements from any
// client share one server-side name ("sluice_<id>") on every server connection.
// Shared across workers: guarded by a mutex; consulted on Parse only, never on Bind.
// Bounded: a statement lives while a client holds it or while it is among the last `keep`
// interned; the registry itself only remembers it weakly. A text that comes back after it was
// dropped gets a new id (and so a new server-side name: no server confuses the two).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace sluice::pool {

struct Statement {
  std::uint64_t id = 0;
  std::string server_name;
  std::string parse_message;  // complete Parse message under server_name, ready to send
  // Set once a server has answered ParseComplete for it: an idle client's Parse+Sync of a
  // validated statement can then be answered without a server connection.
  mutable std::atomic<bool> validated{false};
  // Routing class, computed on first use: -1 not yet, 0 primary, 1 may run on a replica.
  mutable std::atomic<int> route{-1};
  // MySQL: the first COM_STMT_PREPARE response seen for it (later prepares are answered from it),
  // guarded by the MySQL front end's own mutex; freed with the statement.
  mutable std::shared_ptr<const std::string> prepare_response;
};

class StatementRegistry {
 public:
  explicit StatementRegistry(std::size_t keep = 10'000) : recent_(keep ? keep : 1), sweep_at_(2 * recent_.size()) {}
  // Returns the statement for (query, parameter type OIDs), creating it on first use.
  std::shared_ptr<const Statement> intern(std::string_view query, std::string_view param_types);
  // The statement for (query, types) if it was interned before, else null.
  std::shared_ptr<const Statement> find(std::string_view query, std::string_view param_types) const;
  // Statements remembered (alive or not yet swept): at most 2 x (what clients hold + keep).
  std::size_t size() const;
  static StatementRegistry& global();

 private:
  mutable std::mutex mu_;
  std::uint64_t next_id_ = 1;
  std::unordered_map<std::string, std::weak_ptr<const Statement>> by_content_;
  std::vector<std::shared_ptr<const Statement>> recent_;  // ring of the last interned
  std::size_t next_recent_ = 0;
  std::size_t sweep_at_;
};

}  // namespace sluice::pool

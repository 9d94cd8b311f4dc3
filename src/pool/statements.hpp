// Process-wide registry of prepared statements by content, so that equal statements from any
// client share one server-side name ("sluice_<id>") on every server connection.
// Shared across workers: guarded by a mutex; consulted on Parse only, never on Bind.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

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
};

class StatementRegistry {
 public:
  // Returns the statement for (query, parameter type OIDs), creating it on first use.
  std::shared_ptr<const Statement> intern(std::string_view query, std::string_view param_types);
  // The statement for (query, types) if it was interned before, else null.
  std::shared_ptr<const Statement> find(std::string_view query, std::string_view param_types) const;
  std::size_t size() const;
  static StatementRegistry& global();

 private:
  mutable std::mutex mu_;
  std::uint64_t next_id_ = 1;
  std::unordered_map<std::string, std::shared_ptr<const Statement>> by_content_;
};

}  // namespace sluice::pool

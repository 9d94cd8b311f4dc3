// Statement registry: content -> stable id and ready-made Parse message.
#include "src/pool/statements.hpp"

#include <algorithm>

#include "protocols/postgres/codec.hpp"

namespace sluice::pool {

namespace {
std::string content_key(std::string_view query, std::string_view param_types) {
  std::string key;
  key.reserve(query.size() + 1 + param_types.size());
  key.append(query).push_back('\0');
  key.append(param_types);
  return key;
}
}  // namespace

std::shared_ptr<const Statement> StatementRegistry::find(std::string_view query, std::string_view param_types) const {
  auto key = content_key(query, param_types);
  std::lock_guard lock(mu_);
  auto it = by_content_.find(key);
  return it == by_content_.end() ? nullptr : it->second.lock();
}

std::shared_ptr<const Statement> StatementRegistry::intern(std::string_view query, std::string_view param_types) {
  auto key = content_key(query, param_types);
  std::lock_guard lock(mu_);
  auto it = by_content_.find(key);
  std::shared_ptr<const Statement> found = it == by_content_.end() ? nullptr : it->second.lock();
  if (!found) {
    auto s = std::make_shared<Statement>();
    s->id = next_id_++;
    s->server_name = "sluice_" + std::to_string(s->id);
    pg::parse_message(s->parse_message, s->server_name, query, pg::as_bytes(param_types));
    found = s;
    if (it != by_content_.end()) {
      it->second = found;
    } else {
      if (by_content_.size() >= sweep_at_) {  // amortized O(1): the next sweep waits as long again
        std::erase_if(by_content_, [](const auto& kv) { return kv.second.expired(); });
        sweep_at_ = std::max(2 * recent_.size(), 2 * by_content_.size());
      }
      by_content_.emplace(std::move(key), found);
    }
  }
  recent_[next_recent_] = found;  // kept alive a while, whoever holds it
  next_recent_ = (next_recent_ + 1) % recent_.size();
  return found;
}

std::size_t StatementRegistry::size() const {
  std::lock_guard lock(mu_);
  return by_content_.size();
}

StatementRegistry& StatementRegistry::global() {
  static StatementRegistry r;
  return r;
}

}  // namespace sluice::pool

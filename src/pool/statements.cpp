// Statement registry: content -> stable id and ready-made Parse message.
#include "src/pool/statements.hpp"

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
  return it == by_content_.end() ? nullptr : it->second;
}

std::shared_ptr<const Statement> StatementRegistry::intern(std::string_view query, std::string_view param_types) {
  auto key = content_key(query, param_types);
  std::lock_guard lock(mu_);
  auto it = by_content_.find(key);
  if (it != by_content_.end()) return it->second;
  auto s = std::make_shared<Statement>();
  s->id = next_id_++;
  s->server_name = "sluice_" + std::to_string(s->id);
  pg::parse_message(s->parse_message, s->server_name, query, pg::as_bytes(param_types));
  by_content_.emplace(std::move(key), s);
  return s;
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

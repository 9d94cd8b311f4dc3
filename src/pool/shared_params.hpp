// A client's session parameters (PostgreSQL): usually the same dozen pairs for every client of a
// pool, so equal sets are shared (interned per worker) and copied only when one client changes
// its own (copy on write). An idle client then holds a pointer, not a kilobyte of strings.
#pragma once

#include <memory>
#include <string_view>

#include "src/pool/server_conn.hpp"

namespace sluice::pool {

class SharedParams {
 public:
  SharedParams() = default;
  // `p`, or an equal set this worker already shares.
  static SharedParams intern(Params p);

  const Params& get() const { return p_ ? *p_ : empty(); }
  const std::string* find(std::string_view name) const { return get().find(name); }
  const auto& items() const { return get().items; }
  std::uint64_t fingerprint() const { return get().fingerprint; }
  // Whether both hold the very same set (not merely an equal one).
  bool same_set(const SharedParams& o) const { return p_ == o.p_; }

  void set(std::string_view name, std::string_view value) {
    if (const std::string* v = find(name); v && *v == value) return;
    edit().set(name, value);
  }
  void erase(std::string_view name) {
    if (find(name)) edit().erase(name);
  }
  template <typename Pred>
  void erase_if(Pred pred) {
    for (const auto& kv : items())
      if (pred(kv)) {
        edit().erase_if(pred);
        return;
      }
  }

 private:
  static const Params& empty();
  Params& edit() {
    if (!p_ || p_.use_count() > 1) p_ = std::make_shared<Params>(get());
    return *p_;
  }
  std::shared_ptr<Params> p_;
};

}  // namespace sluice::pool

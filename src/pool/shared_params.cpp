// Interning of equal parameter sets, per worker (shared_params.hpp).
#include "src/pool/shared_params.hpp"

#include <unordered_map>

namespace sluice::pool {

namespace {

// Per worker: fingerprint -> a set some client holds. Entries whose set nobody holds any more
// are dropped when met, and in a sweep when the table has doubled since the last one.
thread_local std::unordered_multimap<std::uint64_t, std::weak_ptr<Params>> t_interned;
thread_local std::size_t t_sweep_at = 64;

bool same(const Params& a, const Params& b) {
  if (a.fingerprint != b.fingerprint || a.items.size() != b.items.size()) return false;
  for (const auto& [k, v] : a.items) {
    const std::string* o = b.find(k);
    if (!o || *o != v) return false;
  }
  return true;
}

}  // namespace

const Params& SharedParams::empty() {
  static const Params none;
  return none;
}

SharedParams SharedParams::intern(Params p) {
  SharedParams out;
  auto [lo, hi] = t_interned.equal_range(p.fingerprint);
  for (auto it = lo; it != hi;) {
    if (auto held = it->second.lock()) {
      if (same(*held, p)) {
        out.p_ = std::move(held);
        return out;
      }
      ++it;
    } else {
      it = t_interned.erase(it);
    }
  }
  p.items.shrink_to_fit();
  out.p_ = std::make_shared<Params>(std::move(p));
  t_interned.emplace(out.p_->fingerprint, out.p_);
  if (t_interned.size() >= t_sweep_at) {
    std::erase_if(t_interned, [](const auto& e) { return e.second.expired(); });
    t_sweep_at = std::max<std::size_t>(64, 2 * t_interned.size());
  }
  return out;
}

}  // namespace sluice::pool

// SharedParams: equal sets are shared per worker, a change copies (no client sees another's).
#include <doctest/doctest.h>

#include "src/pool/shared_params.hpp"

using sluice::pool::Params;
using sluice::pool::SharedParams;

namespace {
Params base() {
  Params p;
  p.set("DateStyle", "ISO, MDY");
  p.set("TimeZone", "UTC");
  p.set("application_name", "shared_params_test");
  return p;
}
}  // namespace

TEST_CASE("equal sets are one copy; a change is the changer's own") {
  SharedParams a = SharedParams::intern(base());
  SharedParams b = SharedParams::intern(base());
  CHECK(&a.get() == &b.get());
  CHECK(a.fingerprint() == base().fingerprint);

  b.set("TimeZone", "Europe/Paris");
  CHECK(&a.get() != &b.get());
  CHECK(*a.find("TimeZone") == "UTC");
  CHECK(*b.find("TimeZone") == "Europe/Paris");
  CHECK(a.fingerprint() == base().fingerprint);
  CHECK(b.fingerprint() != a.fingerprint());

  // Setting the value it already has copies nothing.
  SharedParams c = SharedParams::intern(base());
  const Params* before = &c.get();
  c.set("TimeZone", "UTC");
  c.erase("no_such_parameter");
  c.erase_if([](const auto& kv) { return kv.first == "absent"; });
  CHECK(&c.get() == before);
  CHECK(&c.get() == &a.get());

  c.erase("application_name");
  CHECK(c.find("application_name") == nullptr);
  CHECK(a.find("application_name") != nullptr);
  c.erase_if([](const auto& kv) { return kv.first == "DateStyle"; });
  CHECK(c.items().size() == 1);
  CHECK(a.items().size() == 3);
}

TEST_CASE("a set nobody holds is not handed out again, and a different set is not confused with it") {
  { SharedParams a = SharedParams::intern(base()); }
  Params other = base();
  other.set("TimeZone", "Asia/Tokyo");
  SharedParams o = SharedParams::intern(other);
  CHECK(*o.find("TimeZone") == "Asia/Tokyo");
  SharedParams b = SharedParams::intern(base());
  CHECK(*b.find("TimeZone") == "UTC");
  // Many distinct sets come and go: the table is swept, lookups stay right.
  for (int i = 0; i < 500; ++i) {
    Params p = base();
    p.set("application_name", "c" + std::to_string(i));
    SharedParams s = SharedParams::intern(std::move(p));
    CHECK(*s.find("application_name") == "c" + std::to_string(i));
  }
  CHECK(*SharedParams::intern(base()).find("TimeZone") == "UTC");
  CHECK(&SharedParams::intern(base()).get() == &b.get());
  // An empty holder reads as an empty set.
  SharedParams none;
  CHECK(none.items().empty());
  CHECK(none.find("TimeZone") == nullptr);
  none.set("TimeZone", "UTC");
  CHECK(*none.find("TimeZone") == "UTC");
}

// The hashing, HMAC and randomness that logins use (protocols/common/crypto): each thread keeps
// its OpenSSL contexts, HMAC contexts stay keyed for the keys it used last, and small random
// requests come from a block the thread draws at once. The RFC 4231 vectors are checked in an
// order that makes each key hit, miss and evict that cache; threads check their own contexts.
#include <doctest/doctest.h>

#include "protocols/common/crypto.hpp"

#include <set>
#include <string>
#include <thread>
#include <vector>

namespace crypto = sluice::crypto;

namespace {
std::string hex(const crypto::Digest32& d) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (auto b : d) s += {digits[b >> 4], digits[b & 15]};
  return s;
}
std::string bytes(std::size_t n, char c) { return std::string(n, c); }

struct Vector {
  std::string key, data, hmac;
};
// RFC 4231 section 4, HMAC-SHA-256 (test cases 1-4, 6 and 7; 5 is truncated output).
std::vector<Vector> rfc4231() {
  std::string key4;
  for (char c = 1; c <= 25; ++c) key4 += c;
  return {
      {bytes(20, '\x0b'), "Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
      {"Jefe", "what do ya want for nothing?", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
      {bytes(20, '\xaa'), bytes(50, '\xdd'), "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
      {key4, bytes(50, '\xcd'), "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"},
      {bytes(131, '\xaa'), "Test Using Larger Than Block-Size Key - Hash Key First",
       "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
      {bytes(131, '\xaa'),
       "This is a test using a larger than block-size key and a larger than block-size data. The key needs to be "
       "hashed before being used by the HMAC algorithm.",
       "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
  };
}
}  // namespace

TEST_CASE("SHA-256 of the FIPS 180-2 examples, twice on the thread's one context") {
  for (int round = 0; round < 2; ++round) {
    CHECK(hex(crypto::sha256("abc")) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(hex(crypto::sha256("")) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(crypto::sha256_raw("abc") == std::string(crypto::view(crypto::sha256("abc"))));
  }
}

TEST_CASE("HMAC-SHA-256 gives RFC 4231's answers whichever keys came before") {
  const auto v = rfc4231();
  // Each vector alone, then runs that reuse a key at once (a hit), come back to it after others
  // (a hit while it is among the last few, a miss once more keys than the thread keeps came in
  // between), and keys longer than a block (hashed first, never kept).
  const std::vector<std::vector<std::size_t>> orders = {
      {0, 0, 0}, {0, 1, 0, 1}, {0, 1, 2, 3, 0, 1, 2, 3}, {0, 1, 2, 3, 4, 5, 0, 4, 5, 1, 3, 2},
      {5, 4, 5, 4, 0, 0, 1, 2, 3, 1, 0, 3}};
  for (const auto& order : orders)
    for (std::size_t i : order) {
      CAPTURE(i);
      CHECK(hex(crypto::hmac_sha256(v[i].key, v[i].data)) == v[i].hmac);
    }
  // A key that is a prefix of a kept one, and one of the same length differing in its last byte.
  CHECK(hex(crypto::hmac_sha256(bytes(20, '\x0b'), "Hi There")) == v[0].hmac);
  CHECK(hex(crypto::hmac_sha256(bytes(19, '\x0b'), "Hi There")) != v[0].hmac);
  CHECK(hex(crypto::hmac_sha256(bytes(19, '\x0b') + '\x0c', "Hi There")) != v[0].hmac);
  CHECK(hex(crypto::hmac_sha256(bytes(20, '\x0b'), "Hi There")) == v[0].hmac);
}

TEST_CASE("threads hash and MAC on contexts of their own") {
  const auto v = rfc4231();
  std::vector<int> wrong(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int n = 0; n < 300; ++n) {
        const auto& x = v[static_cast<std::size_t>(n + t) % v.size()];
        if (hex(crypto::hmac_sha256(x.key, x.data)) != x.hmac) ++wrong[static_cast<std::size_t>(t)];
        if (hex(crypto::sha256("abc")) != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
          ++wrong[static_cast<std::size_t>(t)];
      }
    });
  for (auto& th : threads) th.join();
  CHECK(wrong == std::vector<int>(4, 0));
}

TEST_CASE("random bytes: the sizes asked for, never handed out twice, across the thread's blocks") {
  std::set<std::string> seen;
  std::size_t total = 0;
  // Sizes that straddle the 256-byte block's end, and large ones drawn directly.
  for (std::size_t n : {8u, 18u, 32u, 4u, 64u, 65u, 200u, 1u, 7u}) {
    for (int i = 0; i < 40; ++i) {
      auto r = crypto::random_bytes(n);
      REQUIRE(r.size() == n);
      total += n;
      if (n >= 8) CHECK(seen.insert(r).second);  // 64 random bits or more: a repeat means reuse
    }
  }
  CHECK(total > 10 * 256);
  CHECK(crypto::random_bytes(0).empty());
  // Not all zero (a block handed out after being wiped would be).
  std::string zeros(32, '\0');
  for (int i = 0; i < 20; ++i) CHECK(crypto::random_bytes(32) != zeros);
}

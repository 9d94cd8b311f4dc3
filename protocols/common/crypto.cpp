// OpenSSL-backed hashing, HMAC, PBKDF2, base64 and randomness.
#include "protocols/common/crypto.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <cctype>
#include <cstring>
#include <stdexcept>

namespace sluice::crypto {

// A login hashes a few times (SCRAM: two HMACs and a digest, docs/design-decisions.md). OpenSSL
// 3's one-shot calls (SHA256(), HMAC()) look their algorithm up in the provider tables, under a
// lock, and allocate a context at every call: under callgrind 5,800 instructions for one block
// of SHA-256 and 26,000 for an HMAC of a SCRAM auth message. The algorithms are fetched once
// here, each thread keeps its contexts, and an HMAC context stays keyed for the few keys the
// thread used last (a user's StoredKey and ServerKey at each of its logins): 3,000 and 12,000.
namespace {

const EVP_MD* sha256_md() {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}
EVP_MAC* hmac_mac() {
  static EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  return mac;
}

struct DigestContext {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~DigestContext() { EVP_MD_CTX_free(ctx); }
};

// HMAC-SHA-256 contexts of this thread, each keyed (its key kept to recognize it), used round
// the ring when a key is not among them.
class HmacContexts {
 public:
  ~HmacContexts() {
    for (auto& e : entries_) {
      EVP_MAC_CTX_free(e.ctx);
      OPENSSL_cleanse(e.key, sizeof e.key);
    }
  }
  // A context ready for data under `key`, or null (OpenSSL failed).
  EVP_MAC_CTX* keyed(std::string_view key) {
    if (key.size() <= kMaxKey)
      for (auto& e : entries_)
        if (e.ctx && e.size == key.size() && CRYPTO_memcmp(e.key, key.data(), key.size()) == 0)
          return EVP_MAC_init(e.ctx, nullptr, 0, nullptr) == 1 ? e.ctx : nullptr;  // same key: its pads kept
    Entry& e = entries_[next_];
    next_ = (next_ + 1) % kEntries;
    if (!e.ctx) {
      e.ctx = EVP_MAC_CTX_new(hmac_mac());
      char digest[] = "SHA256";
      const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                                   OSSL_PARAM_construct_end()};
      if (!e.ctx || EVP_MAC_CTX_set_params(e.ctx, params) != 1) return nullptr;
    }
    e.size = 0;  // not reusable unless keyed below
    if (EVP_MAC_init(e.ctx, reinterpret_cast<const unsigned char*>(key.data()), key.size(), nullptr) != 1)
      return nullptr;
    if (key.size() <= kMaxKey) {
      std::memcpy(e.key, key.data(), key.size());
      e.size = key.size();
    }
    return e.ctx;
  }

 private:
  static constexpr std::size_t kEntries = 4, kMaxKey = 64;
  struct Entry {
    EVP_MAC_CTX* ctx = nullptr;
    unsigned char key[kMaxKey] = {};
    std::size_t size = 0;  // 0: no key to match
  };
  Entry entries_[kEntries];
  std::size_t next_ = 0;
};

thread_local DigestContext t_digest;
thread_local HmacContexts t_hmacs;

[[noreturn]] void crypto_failed(const char* what) { throw std::runtime_error(what); }

}  // namespace

Digest32 sha256(std::string_view data) {
  Digest32 out{};
  unsigned int len = 0;
  EVP_MD_CTX* c = t_digest.ctx;
  if (!c || EVP_DigestInit_ex2(c, sha256_md(), nullptr) != 1 || EVP_DigestUpdate(c, data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(c, out.data(), &len) != 1)
    crypto_failed("SHA-256 failed");
  return out;
}

Digest32 hmac_sha256(std::string_view key, std::string_view data) {
  Digest32 out{};
  std::size_t len = 0;
  EVP_MAC_CTX* c = t_hmacs.keyed(key);
  if (!c || EVP_MAC_update(c, reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1 ||
      EVP_MAC_final(c, out.data(), &len, out.size()) != 1)
    crypto_failed("HMAC-SHA-256 failed");
  return out;
}

Digest32 pbkdf2_sha256(std::string_view password, std::string_view salt, int iterations) {
  Digest32 out{};
  PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                    reinterpret_cast<const unsigned char*>(salt.data()),
                    static_cast<int>(salt.size()), iterations, EVP_sha256(), 32, out.data());
  return out;
}

std::string md5_hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_md5(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string s;
  s.reserve(len * 2);
  for (unsigned i = 0; i < len; ++i) {
    s.push_back(hex[md[i] >> 4]);
    s.push_back(hex[md[i] & 15]);
  }
  return s;
}

std::string base64_encode(std::string_view data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(data.data()),
                          static_cast<int>(data.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  for (char c : text)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/' || c == '='))
      return std::nullopt;
  std::string out(text.size() / 4 * 3 + 1, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()),
                          static_cast<int>(text.size()));
  if (n < 0) return std::nullopt;
  std::size_t len = static_cast<std::size_t>(n);
  // EVP_DecodeBlock does not strip padding.
  if (!text.empty() && text.back() == '=') --len;
  if (text.size() > 1 && text[text.size() - 2] == '=') --len;
  out.resize(len);
  return out;
}

// Each call to RAND_bytes costs about 6,700 instructions whatever it returns (its DRBG's lookup
// and locks), and a login asks twice (a nonce, a cancel key): small requests are served from a
// block the thread draws 256 bytes at a time, each byte handed out once and wiped.
namespace {
struct RandomBlock {
  static constexpr std::size_t kSize = 256;
  unsigned char bytes[kSize];
  std::size_t used = kSize;
  ~RandomBlock() { OPENSSL_cleanse(bytes, sizeof bytes); }
};
thread_local RandomBlock t_random;
}  // namespace

std::string random_bytes(std::size_t n) {
  std::string out(n, '\0');
  auto* dst = reinterpret_cast<unsigned char*>(out.data());
  if (n > RandomBlock::kSize / 4) {
    if (RAND_bytes(dst, static_cast<int>(n)) != 1) throw std::runtime_error("RAND_bytes failed");
    return out;
  }
  RandomBlock& b = t_random;
  if (RandomBlock::kSize - b.used < n) {
    if (RAND_bytes(b.bytes, static_cast<int>(RandomBlock::kSize)) != 1) throw std::runtime_error("RAND_bytes failed");
    b.used = 0;
  }
  std::memcpy(dst, b.bytes + b.used, n);
  OPENSSL_cleanse(b.bytes + b.used, n);
  b.used += n;
  return out;
}

bool equal_constant_time(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string pg_md5_secret(std::string_view password, std::string_view user) {
  std::string in(password);
  in.append(user);
  return "md5" + md5_hex(in);
}

std::string pg_md5_response(std::string_view secret_hex, std::string_view salt4) {
  std::string in(secret_hex);
  in.append(salt4);
  return "md5" + md5_hex(in);
}

std::string sha1_raw(std::string_view data) {
  std::string out(20, '\0');
  SHA1(reinterpret_cast<const unsigned char*>(data.data()), data.size(),
       reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

std::string sha256_raw(std::string_view data) { return std::string(view(sha256(data))); }

std::string hex_upper(std::string_view raw) {
  static const char* digits = "0123456789ABCDEF";
  std::string out;
  out.reserve(raw.size() * 2);
  for (unsigned char c : raw) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

std::optional<std::string> hex_decode(std::string_view hex) {
  if (hex.size() % 2) return std::nullopt;
  auto nib = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    int a = nib(hex[i]), b = nib(hex[i + 1]);
    if (a < 0 || b < 0) return std::nullopt;
    out.push_back(static_cast<char>(a * 16 + b));
  }
  return out;
}

std::shared_ptr<const RsaKey> RsaKey::generate() {
  EVP_PKEY* pkey = EVP_RSA_gen(2048);
  if (!pkey) throw std::runtime_error("cannot generate an RSA key");
  std::shared_ptr<RsaKey> k(new RsaKey());
  k->pkey_ = pkey;
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(bio, pkey);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  k->public_pem_.assign(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  return k;
}

RsaKey::~RsaKey() { EVP_PKEY_free(static_cast<EVP_PKEY*>(pkey_)); }

std::optional<std::string> RsaKey::decrypt_oaep(std::string_view cipher) const {
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new(static_cast<EVP_PKEY*>(pkey_), nullptr);
  if (!ctx) return std::nullopt;
  std::optional<std::string> result;
  std::size_t len = 0;
  const auto* in = reinterpret_cast<const unsigned char*>(cipher.data());
  if (EVP_PKEY_decrypt_init(ctx) > 0 && EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) > 0 &&
      EVP_PKEY_decrypt(ctx, nullptr, &len, in, cipher.size()) > 0) {
    std::string out(len, '\0');
    if (EVP_PKEY_decrypt(ctx, reinterpret_cast<unsigned char*>(out.data()), &len, in, cipher.size()) > 0) {
      out.resize(len);
      result = std::move(out);
    }
  }
  EVP_PKEY_CTX_free(ctx);
  return result;
}

std::optional<std::string> rsa_encrypt_oaep(std::string_view public_pem, std::string_view plain) {
  BIO* bio = BIO_new_mem_buf(public_pem.data(), static_cast<int>(public_pem.size()));
  EVP_PKEY* pkey = PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (!pkey) return std::nullopt;
  std::optional<std::string> result;
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new(pkey, nullptr);
  std::size_t len = 0;
  const auto* in = reinterpret_cast<const unsigned char*>(plain.data());
  if (ctx && EVP_PKEY_encrypt_init(ctx) > 0 && EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) > 0 &&
      EVP_PKEY_encrypt(ctx, nullptr, &len, in, plain.size()) > 0) {
    std::string out(len, '\0');
    if (EVP_PKEY_encrypt(ctx, reinterpret_cast<unsigned char*>(out.data()), &len, in, plain.size()) > 0) {
      out.resize(len);
      result = std::move(out);
    }
  }
  EVP_PKEY_CTX_free(ctx);
  EVP_PKEY_free(pkey);
  return result;
}

}  // namespace sluice::crypto

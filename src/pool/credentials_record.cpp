// Credentials in an online upgrade's client record (credentials_record.hpp).
#include "src/pool/credentials_record.hpp"

#include <cstring>

namespace sluice::pool {

void write_credentials(net::RecordWriter& w, const Credentials& c) {
  w.str(c.user);
  w.u8(static_cast<std::uint8_t>(c.client_auth));
  w.str(c.plaintext);
  w.str(c.md5_secret);
  w.str(c.scram ? pg::format_scram_secret(*c.scram) : std::string());
  w.str(c.mysql_stage2);
  w.str(c.ed25519_public);
  // Recovered from clients' logins.
  auto key = c.client_key();
  w.str(key ? std::string(reinterpret_cast<const char*>(key->data()), key->size()) : std::string());
  w.str(c.mysql_stage1().value_or(std::string()));
  w.str(c.plaintext.empty() ? c.password() : std::string());
  w.flag(c.sha2_cached());
}

std::shared_ptr<const Credentials> read_credentials(
    net::RecordReader& r, const std::function<std::shared_ptr<const Credentials>(const std::string&)>& configured) {
  auto made = std::make_shared<Credentials>();
  made->user = r.str();
  made->client_auth = static_cast<config::AuthMethod>(r.u8());
  made->plaintext = r.str();
  made->md5_secret = r.str();
  std::string scram = r.str();
  made->mysql_stage2 = r.str();
  made->ed25519_public = r.str();
  std::string client_key = r.str(), stage1 = r.str(), password = r.str();
  bool sha2 = r.flag();
  if (!r.ok() || (!client_key.empty() && client_key.size() != 32)) return nullptr;
  if (!scram.empty()) {
    made->scram = pg::parse_scram_secret(scram);
    if (!made->scram) return nullptr;
  }
  std::shared_ptr<const Credentials> c = configured ? configured(made->user) : nullptr;
  if (!c) c = made;
  if (!client_key.empty()) {
    crypto::Digest32 k{};
    std::memcpy(k.data(), client_key.data(), k.size());
    c->remember_client_key(k);
  }
  if (!stage1.empty()) c->remember_mysql_stage1(stage1);
  if (!password.empty() && c->plaintext.empty()) c->remember_password(password);
  if (sha2) c->set_sha2_cached();
  return c;
}

}  // namespace sluice::pool

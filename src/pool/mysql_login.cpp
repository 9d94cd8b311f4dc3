// MySQL / MariaDB server login, sans-io (mysql_login.hpp).
#include "src/pool/mysql_login.hpp"

#include <fmt/format.h>

#include <charconv>

#include "protocols/common/crypto.hpp"
#include "protocols/mysql/ed25519.hpp"

namespace sluice::pool {

namespace {

constexpr std::size_t kMaxLoginMessage = 1u << 20;

// The scramble for `plugin`, or nullopt when the configured secret cannot produce it.
std::optional<std::string> scramble_for(const std::string& plugin, const Credentials& creds, std::string_view nonce) {
  if (plugin == "mysql_native_password") {
    if (auto pw = creds.password(); !pw.empty()) return my::native_scramble(pw, nonce);
    auto stage1 = creds.mysql_stage1();
    if (!stage1) return std::nullopt;
    auto mix = crypto::sha1_raw(std::string(nonce.substr(0, 20)) + crypto::sha1_raw(*stage1));
    std::string out(20, '\0');
    for (int i = 0; i < 20; ++i) out[i] = static_cast<char>((*stage1)[i] ^ mix[i]);
    return out;
  }
  if (plugin == "caching_sha2_password") {
    auto pw = creds.password();
    if (pw.empty()) return std::nullopt;
    return my::sha2_scramble(pw, nonce);
  }
  if (plugin == "client_ed25519") {  // MariaDB: a signature of the 32-byte scramble
    auto pw = creds.password();
    if (pw.empty() || nonce.size() < 32) return std::nullopt;
    return my::ed25519_sign(pw, nonce.substr(0, 32));
  }
  return std::nullopt;
}

const char* const kTracking =
    "SET SESSION session_track_system_variables = '*', session_track_schema = ON, session_track_state_change = ON";
const char* const kBaseline =
    "SELECT @@character_set_client, @@character_set_connection, @@character_set_results, @@collation_connection, "
    "@@max_prepared_stmt_count";

}  // namespace

ConnectResult my_local_error(std::string message, std::uint16_t code, std::string sqlstate) {
  ConnectResult r;
  r.error.fields.severity = "FATAL";
  r.error.fields.code = std::move(sqlstate);
  r.error.fields.message = std::move(message);
  r.error.mysql_code = code;
  return r;
}

MysqlLogin::MysqlLogin(std::shared_ptr<const Credentials> creds, std::string database, ServerTls tls, std::string where,
                       std::uint32_t caps, std::uint32_t mariadb_caps, std::uint8_t charset)
    : creds_(std::move(creds)),
      database_(std::move(database)),
      tls_(std::move(tls)),
      where_(std::move(where)),
      caps_(caps),
      mariadb_caps_(mariadb_caps),
      charset_(charset) {}

LoginStep MysqlLogin::fail(std::string message, std::uint16_t code, std::string sqlstate) {
  failure_ = my_local_error(std::move(message), code, std::move(sqlstate));
  failed_ = true;
  return LoginStep::Failed;
}

LoginStep MysqlLogin::server_error(my::Bytes payload) {
  failure_ = ConnectResult{};
  my::Err e;
  my::parse_err(payload, e);
  failure_.error.from_server = true;
  failure_.error.mysql_code = e.code;
  failure_.error.fields.severity = "FATAL";
  failure_.error.fields.code = e.sqlstate;
  failure_.error.fields.message = e.message;
  return LoginStep::Failed;
}

ConnectResult MysqlLogin::lost(bool sending, const std::string& reason) const {
  const char* when = "during login";
  switch (state_) {
    case State::Greeting:
      when = "before its handshake";
      break;
    case State::SslSent:
      when = "after SSLRequest";
      break;
    case State::Tracking:
      when = "while Sluice set up session tracking";
      break;
    case State::Baseline:
      when = "while Sluice read the session character set";
      break;
    default:
      break;
  }
  (void)sending;
  return my_local_error(fmt::format("{} closed the connection {}: {}", where_, when, reason));
}

ConnectResult MysqlLogin::tls_failed(const std::string& reason) const {
  auto r = my_local_error(fmt::format("TLS with {} failed: {}", where_, reason), my::er::HANDSHAKE, "08S01");
  r.tls_handshake_failed = true;
  return r;
}

bool MysqlLogin::next_message(std::string& in) {
  std::size_t used = 0;
  auto d = my::next_message(my::as_bytes(in), kMaxLoginMessage, payload_, seq_, used);
  if (d == my::Decode::NeedMore) return false;
  if (d == my::Decode::Malformed) {
    fail(fmt::format("{} sent a malformed or oversized packet during login", where_), my::er::HANDSHAKE, "08S01");
    return false;
  }
  in.erase(0, used);
  return true;
}

void MysqlLogin::tls_ready() {
  tls_on_ = true;
  state_ = State::Response;
}

LoginStep MysqlLogin::resume(std::string& in, std::string& out) {
  switch (state_) {
    case State::Greeting:
      if (!next_message(in)) return failed_ ? LoginStep::Failed : LoginStep::Receive;
      return on_greeting(out);
    case State::SslSent:
      return LoginStep::StartTls;
    case State::Response:  // TLS is up: the response goes through it
      my::append_packets(out, response_, response_seq_);
      state_ = State::Auth;
      return LoginStep::Send;
    case State::Auth:
      if (!next_message(in)) return failed_ ? LoginStep::Failed : LoginStep::Receive;
      return on_auth(out);
    case State::Tracking: {
      if (!next_message(in)) return failed_ ? LoginStep::Failed : LoginStep::Receive;
      if (!payload_.empty() && static_cast<std::uint8_t>(payload_[0]) == 0xFF)
        return server_error(my::as_bytes(payload_));
      std::string q;
      my::build_command(q, my::com::QUERY, kBaseline);
      my::append_packets(out, q, 0);
      state_ = State::Baseline;
      return LoginStep::Send;
    }
    case State::Baseline:
      for (;;) {
        if (!next_message(in)) return failed_ ? LoginStep::Failed : LoginStep::Receive;
        auto step = on_baseline();
        if (step != LoginStep::Receive) return step;
      }
    case State::Done:
      return LoginStep::Done;
  }
  return LoginStep::Failed;
}

LoginStep MysqlLogin::on_greeting(std::string& out) {
  if (!payload_.empty() && static_cast<std::uint8_t>(payload_[0]) == 0xFF) return server_error(my::as_bytes(payload_));
  my::Handshake hs;
  if (!my::parse_handshake(my::as_bytes(payload_), hs))
    return fail(fmt::format("{} sent a handshake Sluice cannot read", where_), my::er::HANDSHAKE, "08S01");
  greeting = hs;
  constexpr std::uint32_t base = my::cap::PROTOCOL_41 | my::cap::SECURE_CONNECTION | my::cap::PLUGIN_AUTH |
                                 my::cap::PLUGIN_AUTH_LENENC_CLIENT_DATA | my::cap::TRANSACTIONS | my::cap::LONG_FLAG |
                                 my::cap::SESSION_TRACK | my::cap::CONNECT_ATTRS;
  std::uint32_t want = base | caps_ | (database_.empty() ? 0 : my::cap::CONNECT_WITH_DB);
  // MariaDB clears LONG_PASSWORD ("CLIENT_MYSQL") to announce its own extensions: those the
  // pool's clients negotiated (extended column metadata) are asked for in the same bytes.
  if ((want & hs.capabilities) != want)
    return fail(fmt::format("{} lacks capabilities Sluice needs (0x{:x})", where_, want & ~hs.capabilities),
                my::er::NOT_SUPPORTED, "08004");
  if ((mariadb_caps_ & ~hs.mariadb_capabilities) != 0)
    return fail(fmt::format("{} lacks MariaDB capabilities Sluice's clients use (0x{:x})", where_,
                            mariadb_caps_ & ~hs.mariadb_capabilities),
                my::er::NOT_SUPPORTED, "08004");
  capabilities = want;
  my::HandshakeResponse resp;
  resp.capabilities = want | (hs.capabilities & my::cap::LONG_PASSWORD);
  resp.mariadb_capabilities = mariadb_caps_ & hs.mariadb_capabilities;
  resp.max_packet = 1u << 30;
  resp.charset = charset_ ? charset_ : (hs.charset ? hs.charset : 45);
  resp.user = creds_->user;
  resp.database = database_;
  plugin_ = hs.auth_plugin.empty() ? "mysql_native_password" : hs.auth_plugin;
  nonce_ = hs.nonce;
  resp.auth_plugin = plugin_;
  resp.auth_response = scramble_for(plugin_, *creds_, nonce_).value_or("");
  resp.attributes = {{"_client_name", "sluice"}, {"program_name", "sluice"}};
  std::uint8_t seq = static_cast<std::uint8_t>(seq_ + 1);
  if (tls_.on() && (hs.capabilities & my::cap::SSL)) {  // SSLRequest, TLS, then the response
    resp.capabilities |= my::cap::SSL;
    std::string req;
    my::build_ssl_request(req, resp);
    my::append_packets(out, req, seq);
    my::build_handshake_response(response_, resp);
    response_seq_ = static_cast<std::uint8_t>(seq + 1);
    state_ = State::SslSent;  // sent, then TLS (tls_ready() moves on to Response)
    return LoginStep::Send;
  }
  if (tls_.required())
    return fail(
        fmt::format("{} does not offer TLS, and server_tls = \"{}\" requires it", where_, config::to_string(tls_.mode)),
        my::er::HANDSHAKE, "08S01");
  std::string r;
  my::build_handshake_response(r, resp);
  my::append_packets(out, r, seq);
  state_ = State::Auth;
  return LoginStep::Send;
}

LoginStep MysqlLogin::on_auth(std::string& out) {
  auto p = my::as_bytes(payload_);
  if (p.empty()) return fail(fmt::format("{} sent an empty packet during login", where_), my::er::HANDSHAKE, "08S01");
  std::uint8_t head = p[0];
  if (head == 0x00) {  // logged in: session tracking next
    std::string q;
    my::build_command(q, my::com::QUERY, kTracking);
    my::append_packets(out, q, 0);
    state_ = State::Tracking;
    return LoginStep::Send;
  }
  if (head == 0xFF) return server_error(p);
  std::string reply;
  if (head == 0xFE) {
    my::AuthSwitch sw;
    if (!my::parse_auth_switch(p, sw))
      return fail(fmt::format("{} sent a malformed auth switch", where_), my::er::HANDSHAKE, "08S01");
    plugin_ = sw.plugin;
    nonce_ = sw.data;
    auto s = scramble_for(plugin_, *creds_, nonce_);
    if (!s) {
      if (plugin_ == "mysql_native_password" || plugin_ == "caching_sha2_password" || plugin_ == "client_ed25519")
        return fail(fmt::format("cannot log in to {} with {}: the config holds only a stored hash for user '{}'; "
                                "a client must log in with mysql_native_password first",
                                where_, plugin_, creds_->user),
                    my::er::ACCESS_DENIED, "28000");
      return fail(fmt::format("{} asks for authentication plugin '{}', which Sluice does not support", where_, plugin_),
                  my::er::NOT_SUPPORTED, "28000");
    }
    reply = *s;
  } else if (head == 0x01 && plugin_ == "caching_sha2_password") {
    auto data = my::as_sv(p.subspan(1));
    if (data == "\x03") return LoginStep::Receive;  // fast authentication succeeded: OK follows
    if (data == "\x04" && tls_on_) {                // full authentication over TLS: the password itself
      reply = creds_->password();
      reply.push_back('\0');
    } else if (data == "\x04") {  // full authentication: ask for the public key
      reply = "\x02";
    } else if (data.rfind("-----BEGIN", 0) == 0) {
      std::string pw = creds_->password();
      pw.push_back('\0');
      auto enc = crypto::rsa_encrypt_oaep(data, my::xor_with_nonce(pw, nonce_));
      if (!enc)
        return fail(fmt::format("{} sent an RSA public key Sluice cannot use", where_), my::er::HANDSHAKE, "08S01");
      reply = *enc;
    } else {
      return fail(fmt::format("{} sent unexpected caching_sha2_password data", where_), my::er::HANDSHAKE, "08S01");
    }
  } else {
    return fail(fmt::format("{} sent an unexpected packet (0x{:02x}) during login", where_, head), my::er::HANDSHAKE,
                "08S01");
  }
  my::append_packets(out, reply, static_cast<std::uint8_t>(seq_ + 1));
  return LoginStep::Send;
}

// The answer to kBaseline, as read_one_row reads one: column count, column definitions (and an
// EOF without DEPRECATE_EOF), one row, then its EOF / OK.
LoginStep MysqlLogin::on_baseline() {
  auto unexpected = [this] {
    failure_ = lost(false, "unexpected answer");
    failed_ = true;
    return LoginStep::Failed;
  };
  bool deprecate_eof = (capabilities & my::cap::DEPRECATE_EOF) != 0;
  switch (baseline_part_) {
    case 0: {
      my::Reader head(my::as_bytes(payload_));
      columns_ = head.lenenc();
      if (!head.ok() || payload_[0] == '\xff' || columns_ == 0 || columns_ > 64) return unexpected();
      baseline_part_ = 1;
      skipped_ = 0;
      return LoginStep::Receive;
    }
    case 1:
      if (++skipped_ < columns_ + (deprecate_eof ? 0 : 1)) return LoginStep::Receive;
      baseline_part_ = 2;
      return LoginStep::Receive;
    case 2: {
      my::Reader r(my::as_bytes(payload_));
      character_set.clear();
      for (std::uint64_t i = 0; i < columns_; ++i) {
        bool is_null = false;
        auto len = r.lenenc_nullable(is_null);
        character_set.emplace_back(is_null ? std::string_view() : r.str(static_cast<std::size_t>(len.value_or(0))));
      }
      if (!r.ok() || character_set.size() != 5) return unexpected();
      std::size_t limit = 0;
      const auto& text = character_set[4];
      if (std::from_chars(text.data(), text.data() + text.size(), limit).ec == std::errc()) max_prepared = limit;
      character_set.pop_back();
      baseline_part_ = 3;
      return LoginStep::Receive;
    }
    default:  // the terminator
      state_ = State::Done;
      return LoginStep::Done;
  }
}

}  // namespace sluice::pool

// Server logins (pool/pg_login, pool/mysql_login) through the one driver (pool/login_driver),
// byte by byte against scripted servers: what Sluice must send at each step, what it makes of
// each answer, and, for every step of every script, a network failure (or failed TLS handshake)
// injected there, which must end the login with the words for that step and nothing else.
#include <doctest/doctest.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <fmt/format.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "protocols/common/crypto.hpp"
#include "protocols/mysql/codec.hpp"
#include "protocols/postgres/codec.hpp"
#include "protocols/postgres/scram.hpp"
#include "src/pool/credentials.hpp"
#include "src/pool/login_driver.hpp"
#include "src/pool/mysql_login.hpp"
#include "src/pool/pg_login.hpp"

using namespace sluice;
namespace asio = boost::asio;

namespace {

// One I/O operation the driver performs, in order.
struct Op {
  enum Kind { Sent, Served, Tls } kind;
  std::string bytes;                              // Sent: exactly these (unless `check`); Served: these
  std::function<void(const std::string&)> check;  // Sent: checks what was sent instead
  std::function<std::string()> serve;             // Served: computed when asked
  std::string failure;                            // the words a failure injected here must give
};
Op sent(std::string bytes, std::string failure) { return {Op::Sent, std::move(bytes), {}, {}, std::move(failure)}; }
Op sent_checked(std::function<void(const std::string&)> check, std::string failure) {
  return {Op::Sent, {}, std::move(check), {}, std::move(failure)};
}
Op served(std::string bytes, std::string failure) { return {Op::Served, std::move(bytes), {}, {}, std::move(failure)}; }
Op served_fn(std::function<std::string()> fn, std::string failure) {
  return {Op::Served, {}, {}, std::move(fn), std::move(failure)};
}
Op tls(std::string failure) { return {Op::Tls, {}, {}, {}, std::move(failure)}; }

class ScriptedServer final : public pool::LoginTransport {
 public:
  ScriptedServer(const std::vector<Op>& ops, std::size_t fail_at) : ops_(ops), fail_at_(fail_at) {}
  asio::awaitable<void> send(std::string_view bytes, boost::system::error_code& ec) override {
    const Op* op = next(Op::Sent);
    if (!op) {
      ec = asio::error::connection_reset;
      co_return;
    }
    if (op->check) op->check(std::string(bytes));
    else CHECK(to_hex(bytes) == to_hex(op->bytes));
  }
  asio::awaitable<std::size_t> receive(asio::mutable_buffer into, boost::system::error_code& ec) override {
    if (pending_.empty()) {
      const Op* op = next(Op::Served);
      if (!op) {
        ec = asio::error::eof;
        co_return 0;
      }
      pending_ = op->serve ? op->serve() : op->bytes;
    }
    std::size_t n = std::min(into.size(), pending_.size());
    std::memcpy(into.data(), pending_.data(), n);
    pending_.erase(0, n);
    co_return n;
  }
  asio::awaitable<std::string> start_tls() override {
    co_return next(Op::Tls) ? std::string() : std::string("handshake failure (injected)");
  }
  bool expired() const override { return expire_after_ <= at_; }
  void expire_after(std::size_t ops) { expire_after_ = ops; }
  std::size_t done() const { return at_; }

 private:
  // The next operation, checked to be of `kind`; null when the failure is injected here.
  const Op* next(Op::Kind kind) {
    REQUIRE(at_ < ops_.size());
    const Op& op = ops_[at_];
    CHECK(op.kind == kind);
    return at_++ == fail_at_ ? nullptr : &op;
  }
  static std::string to_hex(std::string_view s) {
    std::string out;
    for (unsigned char c : s) out += fmt::format("{:02x}", c);
    return out;
  }
  const std::vector<Op>& ops_;
  std::size_t fail_at_;
  std::size_t at_ = 0;
  std::size_t expire_after_ = SIZE_MAX;
  std::string pending_;
};

std::optional<pool::ConnectResult> drive(pool::LoginAlgorithm& login, ScriptedServer& server) {
  asio::io_context io;
  std::optional<pool::ConnectResult> out;
  bool finished = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        out = co_await pool::drive_login(login, server);
        finished = true;
      },
      asio::detached);
  io.run();
  REQUIRE(finished);
  return out;
}

// Runs `script` once: the login must fail; its failure.
pool::ConnectResult refused(pool::LoginAlgorithm& login, const std::vector<Op>& script) {
  ScriptedServer server(script, SIZE_MAX);
  auto failed = drive(login, server);
  REQUIRE(failed);
  return *failed;
}

// Runs `script` whole (it must log in and use every operation), then once per operation with a
// failure injected there (each must end the login with that operation's words).
template <typename Make, typename Check>
void run_script(const std::vector<Op>& script, Make make, Check on_success) {
  {
    auto login = make();
    ScriptedServer server(script, SIZE_MAX);
    auto failed = drive(*login, server);
    REQUIRE_MESSAGE(!failed, failed->error.fields.message);
    CHECK(server.done() == script.size());
    on_success(*login);
  }
  for (std::size_t k = 0; k < script.size(); ++k) {
    CAPTURE(k);
    auto login = make();
    ScriptedServer server(script, k);
    auto failed = drive(*login, server);
    REQUIRE(failed);
    CHECK(server.done() == k + 1);
    CHECK_MESSAGE(failed->error.fields.message.find(script[k].failure) != std::string::npos,
                  failed->error.fields.message);
    CHECK_FALSE(failed->error.from_server);
    CHECK(failed->tls_handshake_failed == (script[k].kind == Op::Tls));
  }
}

// ---- PostgreSQL ---------------------------------------------------------------------------

std::string be_u32(std::uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}
std::string pg_msg(char type, const std::string& body) { return type + be_u32(body.size() + 4) + body; }
std::string pg_auth(std::uint32_t code, const std::string& rest = {}) { return pg_msg('R', be_u32(code) + rest); }

std::shared_ptr<const pool::Credentials> creds(const std::string& user, const std::string& password) {
  config::User u;
  u.name = user;
  u.password = password;
  return pool::make_credentials(u, "t.toml");
}

const std::string kWhere = "server 127.0.0.1:5432 (user \"app\", database \"db\")";

std::string pg_ready_tail() {
  return pg_auth(0) +
         pg_msg('S', std::string("server_version\0"
                                 "15.5\0",
                                 20)) +
         pg_msg('K', be_u32(4321) + be_u32(8765)) + pg_msg('Z', "I");
}

pool::ServerTls tls_policy(config::ServerTlsMode mode) {
  pool::ServerTls t;
  t.mode = mode;
  t.ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  return t;
}

}  // namespace

TEST_CASE("PostgreSQL login: SSLRequest, TLS, SCRAM-SHA-256, then parameters and the key until ReadyForQuery") {
  const std::string cnonce = "rOprNGfwEbeRWgbNEkqO", snonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
  auto secret = pg::make_scram_secret("pencil", "salt-of-16-bytes", 4096);
  auto server = std::make_shared<pg::ScramServer>(secret, snonce);
  std::string server_final;
  const std::string startup = std::string("\0\0\0\x1e\0\x03\0\0user\0app\0database\0db\0\0", 30);
  const std::string initial = pg_msg('p', std::string("SCRAM-SHA-256\0", 14) + be_u32(28) + "n,,n=,r=" + cnonce);
  std::vector<Op> script = {
      sent(std::string("\0\0\0\x08\x04\xd2\x16\x2f", 8), "closed the connection after SSLRequest"),
      served("S", "closed the connection after SSLRequest"),
      tls("TLS with " + kWhere + " failed: handshake failure (injected)"),
      sent(startup, "cannot write to " + kWhere),
      served(pg_auth(10, std::string("SCRAM-SHA-256\0\0", 15)), "closed the connection during login"),
      sent(initial, "cannot write to"),
      served_fn(
          [server] {
            std::string err;
            auto first = server->client_first("n,,n=,r=" + std::string("rOprNGfwEbeRWgbNEkqO"), err);
            REQUIRE(first);
            return pg_auth(11, *first);
          },
          "closed the connection during login"),
      sent_checked(
          [server, &server_final](const std::string& bytes) {
            REQUIRE(bytes.size() > 5);
            CHECK(bytes[0] == 'p');
            std::string err;
            auto final_msg = server->client_final(bytes.substr(5), err);
            REQUIRE_MESSAGE(final_msg, err);  // the proof is right for "pencil"
            server_final = *final_msg;
          },
          "cannot write to"),
      served_fn([&server_final] { return pg_auth(12, server_final) + pg_ready_tail(); },
                "closed the connection during login"),
  };
  run_script(
      script,
      [&] {
        server = std::make_shared<pg::ScramServer>(secret, snonce);
        return std::make_unique<pool::PgLogin>(creds("app", "pencil"), "db", tls_policy(config::ServerTlsMode::Prefer),
                                               kWhere, cnonce);
      },
      [](pool::PgLogin& l) {
        CHECK(l.backend_pid == 4321);
        CHECK(l.backend_key == 8765);
        REQUIRE(l.params.find("server_version"));
        CHECK(*l.params.find("server_version") == "15.5");
      });
}

TEST_CASE("PostgreSQL login: md5 without TLS, messages split across reads") {
  const std::string salt = "\x01\x02\x03\x04";
  const std::string expected_md5 = "md5" + crypto::md5_hex(crypto::md5_hex("secretapp") + salt);
  const std::string startup = std::string("\0\0\0\x1e\0\x03\0\0user\0app\0database\0db\0\0", 30);
  std::string tail = pg_ready_tail();
  std::vector<Op> script = {
      sent(startup, "cannot write to"),
      served(pg_auth(5, salt).substr(0, 6), "closed the connection during login"),  // half a message
      served(pg_auth(5, salt).substr(6), "closed the connection during login"),
      sent(pg_msg('p', expected_md5 + std::string(1, '\0')), "cannot write to"),
      served(tail.substr(0, 10), "closed the connection during login"),
      served(tail.substr(10), "closed the connection during login"),
  };
  run_script(
      script, [] { return std::make_unique<pool::PgLogin>(creds("app", "secret"), "db", pool::ServerTls{}, kWhere); },
      [](pool::PgLogin& l) { CHECK(l.backend_pid == 4321); });
}

TEST_CASE("PostgreSQL login: the server's own refusal, and answers Sluice must refuse") {
  auto run_once = [](std::unique_ptr<pool::PgLogin> login, std::vector<Op> script) { return refused(*login, script); };
  const std::string startup = std::string("\0\0\0\x1e\0\x03\0\0user\0app\0database\0db\0\0", 30);
  static const char kFatal[] = "SFATAL\0C28P01\0Mpassword authentication failed for user \"app\"\0";
  std::string fatal = pg_msg('E', std::string(kFatal, sizeof kFatal));  // the fields, then the closing NUL
  auto r = run_once(std::make_unique<pool::PgLogin>(creds("app", "x"), "db", pool::ServerTls{}, kWhere),
                    {sent(startup, ""), served(fatal, "")});
  CHECK(r.error.from_server);
  CHECK(r.error.fields.code == "28P01");
  CHECK(r.error.fields.message == "password authentication failed for user \"app\"");

  const std::string ssl_request("\0\0\0\x08\x04\xd2\x16\x2f", 8);
  r = run_once(
      std::make_unique<pool::PgLogin>(creds("app", "x"), "db", tls_policy(config::ServerTlsMode::Require), kWhere),
      {sent(ssl_request, ""), served("N", "")});
  CHECK(r.error.fields.message == kWhere + " does not accept TLS, and server_tls = \"require\" requires it");
  r = run_once(
      std::make_unique<pool::PgLogin>(creds("app", "x"), "db", tls_policy(config::ServerTlsMode::Prefer), kWhere),
      {sent(ssl_request, ""), served("E", "")});
  CHECK(r.error.fields.message == kWhere + " answered SSLRequest with an unexpected byte");
  r = run_once(std::make_unique<pool::PgLogin>(creds("app", "x"), "db", pool::ServerTls{}, kWhere),
               {sent(startup, ""), served(pg_auth(7), "")});  // GSSAPI
  CHECK(r.error.fields.message == kWhere + " requested authentication method 7, which Sluice does not support");
  r = run_once(std::make_unique<pool::PgLogin>(creds("app", "x"), "db", pool::ServerTls{}, kWhere),
               {sent(startup, ""), served(std::string("R\xff\xff\xff\xff", 5), "")});
  CHECK(r.error.fields.message == kWhere + " sent a malformed message during login");
}

TEST_CASE("PostgreSQL login: hostile servers are bounded (no SQLSTATE, an endless message, 10^9 SCRAM rounds)") {
  auto run_once = [](std::unique_ptr<pool::PgLogin> login, std::vector<Op> script) { return refused(*login, script); };
  auto login = [] { return std::make_unique<pool::PgLogin>(creds("app", "pencil"), "db", pool::ServerTls{}, kWhere); };
  const std::string startup = std::string("\0\0\0\x1e\0\x03\0\0user\0app\0database\0db\0\0", 30);
  // An ErrorResponse without a SQLSTATE (C) field: the server's words, no code, no crash.
  static const char kNoCode[] = "SFATAL\0Mno code here\0";
  auto r = run_once(login(), {sent(startup, ""), served(pg_msg('E', std::string(kNoCode, sizeof kNoCode)), "")});
  CHECK(r.error.from_server);
  CHECK(r.error.fields.code.empty());
  CHECK(r.error.fields.message == "no code here");
  // A message that says it is 2 GiB long: refused when its header arrives, not waited for.
  r = run_once(login(), {sent(startup, ""), served(std::string("E\x7f\xff\xff\xff", 5), "")});
  CHECK(r.error.fields.message == kWhere + " sent a malformed message during login");
  // SCRAM with 10^9 iterations (hours of PBKDF2 on a worker thread): refused before any is run.
  const std::string cnonce = "rOprNGfwEbeRWgbNEkqO";
  auto t0 = std::chrono::steady_clock::now();
  r = run_once(std::make_unique<pool::PgLogin>(creds("app", "pencil"), "db", pool::ServerTls{}, kWhere, cnonce),
               {sent(startup, ""), served(pg_auth(10, std::string("SCRAM-SHA-256\0\0", 15)), ""),
                sent(pg_msg('p', std::string("SCRAM-SHA-256\0", 14) + be_u32(28) + "n,,n=,r=" + cnonce), ""),
                served(pg_auth(11, "r=" + cnonce + "server,s=c2FsdA==,i=1000000000"), "")});
  CHECK(r.error.fields.message ==
        "SCRAM login to " + kWhere +
            " failed: the server asks for 1000000000 SCRAM iterations; Sluice accepts at most 1000000");
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(2));
}

TEST_CASE("a login past its deadline says so, in the words of the step it was at") {
  const std::string startup = std::string("\0\0\0\x1e\0\x03\0\0user\0app\0database\0db\0\0", 30);
  std::vector<Op> script = {sent(startup, ""), served(pg_auth(5, "salt"), "")};
  pool::PgLogin login(creds("app", "secret"), "db", pool::ServerTls{}, kWhere);
  ScriptedServer server(script, SIZE_MAX);
  server.expire_after(2);  // the deadline passes while Sluice waits for the server's answer
  auto failed = drive(login, server);
  REQUIRE(failed);
  CHECK(failed->error.fields.message == kWhere + " closed the connection during login: timed out");
}

// ---- MySQL --------------------------------------------------------------------------------

namespace {

const std::string kMyWhere = "server 127.0.0.1:3306 (user 'app')";
const std::string kNonce = "abcdefghijklmnopqrst";  // 20 bytes

std::string my_packet(const std::string& payload, std::uint8_t seq) {
  std::string out;
  my::append_packets(out, payload, seq);
  return out;
}

std::uint32_t server_caps(bool ssl) {
  return my::cap::LONG_PASSWORD | my::cap::FOUND_ROWS | my::cap::LONG_FLAG | my::cap::CONNECT_WITH_DB |
         my::cap::PROTOCOL_41 | my::cap::TRANSACTIONS | my::cap::SECURE_CONNECTION | my::cap::MULTI_STATEMENTS |
         my::cap::MULTI_RESULTS | my::cap::PS_MULTI_RESULTS | my::cap::PLUGIN_AUTH | my::cap::CONNECT_ATTRS |
         my::cap::PLUGIN_AUTH_LENENC_CLIENT_DATA | my::cap::SESSION_TRACK | my::cap::DEPRECATE_EOF |
         (ssl ? my::cap::SSL : 0);
}

std::string greeting(const std::string& plugin, bool ssl) {
  my::Handshake hs;
  hs.server_version = "10.11.6-MariaDB";
  hs.connection_id = 77;
  hs.nonce = kNonce;
  hs.capabilities = server_caps(ssl);
  hs.charset = 45;
  hs.status = 2;
  hs.auth_plugin = plugin;
  std::string p;
  my::build_handshake(p, hs);
  return my_packet(p, 0);
}

// What Sluice must answer the greeting with, for a pool whose clients use DEPRECATE_EOF.
my::HandshakeResponse expected_response(const std::string& plugin, const std::string& scramble) {
  my::HandshakeResponse r;
  r.capabilities = my::cap::PROTOCOL_41 | my::cap::SECURE_CONNECTION | my::cap::PLUGIN_AUTH |
                   my::cap::PLUGIN_AUTH_LENENC_CLIENT_DATA | my::cap::TRANSACTIONS | my::cap::LONG_FLAG |
                   my::cap::SESSION_TRACK | my::cap::CONNECT_ATTRS | my::cap::DEPRECATE_EOF | my::cap::CONNECT_WITH_DB |
                   my::cap::LONG_PASSWORD;
  r.max_packet = 1u << 30;
  r.charset = 45;
  r.user = "app";
  r.database = "db";
  r.auth_plugin = plugin;
  r.auth_response = scramble;
  r.attributes = {{"_client_name", "sluice"}, {"program_name", "sluice"}};
  return r;
}
std::string response_bytes(const my::HandshakeResponse& r, std::uint8_t seq) {
  std::string p;
  my::build_handshake_response(p, r);
  return my_packet(p, seq);
}

std::string ok_packet(std::uint8_t seq) { return my_packet(std::string("\x00\x00\x00\x02\x00\x00\x00", 7), seq); }

std::string query(const std::string& text) {
  std::string p;
  my::build_command(p, my::com::QUERY, text);
  return my_packet(p, 0);
}

// The baseline's answer with DEPRECATE_EOF: count, five definitions, one row, the OK terminator.
std::string baseline_answer() {
  std::string out = my_packet(std::string("\x05", 1), 1);
  for (std::uint8_t i = 0; i < 5; ++i) out += my_packet("def-" + std::to_string(i), static_cast<std::uint8_t>(2 + i));
  std::string row;
  for (const char* v : {"utf8mb4", "utf8mb4", "utf8mb4", "utf8mb4_general_ci", "16382"}) my::put_lenenc_str(row, v);
  out += my_packet(row, 7);
  out += my_packet(std::string("\xfe\x00\x00\x02\x00\x00\x00", 7), 8);
  return out;
}

std::vector<Op> after_login() {
  return {
      sent(query("SET SESSION session_track_system_variables = '*', session_track_schema = ON, "
                 "session_track_state_change = ON"),
           "closed the connection while Sluice set up session tracking"),
      served(ok_packet(1), "closed the connection while Sluice set up session tracking"),
      sent(query("SELECT @@character_set_client, @@character_set_connection, @@character_set_results, "
                 "@@collation_connection, @@max_prepared_stmt_count"),
           "closed the connection while Sluice read the session character set"),
      served(baseline_answer(), "closed the connection while Sluice read the session character set"),
  };
}

std::unique_ptr<pool::MysqlLogin> my_login(const std::string& password, pool::ServerTls tls = {}) {
  return std::make_unique<pool::MysqlLogin>(creds("app", password), "db", std::move(tls), kMyWhere,
                                            my::cap::DEPRECATE_EOF, 0, 0);
}

void check_logged_in(pool::MysqlLogin& l) {
  REQUIRE(l.greeting);
  CHECK(l.greeting->connection_id == 77);
  CHECK(l.character_set == std::vector<std::string>{"utf8mb4", "utf8mb4", "utf8mb4", "utf8mb4_general_ci"});
  CHECK(l.max_prepared == std::optional<std::size_t>(16382));
  CHECK((l.capabilities & my::cap::DEPRECATE_EOF) != 0);
}

}  // namespace

TEST_CASE("MySQL login: mysql_native_password, tracking and the character-set baseline") {
  std::vector<Op> script = {
      served(greeting("mysql_native_password", false), "closed the connection before its handshake"),
      sent(response_bytes(expected_response("mysql_native_password", my::native_scramble("secret", kNonce)), 1),
           "closed the connection during login"),
      served(ok_packet(2), "closed the connection during login"),
  };
  for (auto& op : after_login()) script.push_back(op);
  run_script(
      script, [] { return my_login("secret"); }, check_logged_in);
}

TEST_CASE("MySQL login: an auth switch to mysql_native_password with the switch's nonce") {
  const std::string nonce2 = "ABCDEFGHIJKLMNOPQRST";
  std::string sw;
  my::build_auth_switch(sw, "mysql_native_password", nonce2 + std::string(1, '\0'));
  std::vector<Op> script = {
      served(greeting("caching_sha2_password", false), "closed the connection before its handshake"),
      sent(response_bytes(expected_response("caching_sha2_password", my::sha2_scramble("secret", kNonce)), 1),
           "during login"),
      served(my_packet(sw, 2), "during login"),
      sent(my_packet(my::native_scramble("secret", nonce2), 3), "during login"),
      served(ok_packet(4), "during login"),
  };
  for (auto& op : after_login()) script.push_back(op);
  run_script(
      script, [] { return my_login("secret"); }, check_logged_in);
}

TEST_CASE("MySQL login: caching_sha2_password full authentication with the server's RSA key") {
  auto key = crypto::RsaKey::generate();
  std::vector<Op> script = {
      served(greeting("caching_sha2_password", false), "before its handshake"),
      sent(response_bytes(expected_response("caching_sha2_password", my::sha2_scramble("secret", kNonce)), 1),
           "during login"),
      served(my_packet(std::string("\x01\x04", 2), 2), "during login"),  // perform full authentication
      sent(my_packet(std::string("\x02", 1), 3), "during login"),        // the public key, please
      served(my_packet("\x01" + key->public_pem(), 4), "during login"),
      sent_checked(
          [key](const std::string& bytes) {
            REQUIRE(bytes.size() == 4 + 256);
            CHECK(static_cast<std::uint8_t>(bytes[3]) == 5);
            auto plain = key->decrypt_oaep(bytes.substr(4));
            REQUIRE(plain);
            CHECK(my::xor_with_nonce(*plain, kNonce) == std::string("secret\0", 7));
          },
          "during login"),
      served(ok_packet(6), "during login"),
  };
  for (auto& op : after_login()) script.push_back(op);
  run_script(
      script, [] { return my_login("secret"); }, check_logged_in);
}

TEST_CASE("MySQL login: SSLRequest, TLS, then caching_sha2_password's full path sends the password itself") {
  auto expected = expected_response("caching_sha2_password", my::sha2_scramble("secret", kNonce));
  expected.capabilities |= my::cap::SSL;
  std::string ssl_request;
  my::build_ssl_request(ssl_request, expected);
  std::vector<Op> script = {
      served(greeting("caching_sha2_password", true), "before its handshake"),
      sent(my_packet(ssl_request, 1), "closed the connection after SSLRequest"),
      tls("TLS with " + kMyWhere + " failed: handshake failure (injected)"),
      sent(response_bytes(expected, 2), "during login"),
      served(my_packet(std::string("\x01\x04", 2), 3), "during login"),
      sent(my_packet(std::string("secret\0", 7), 4), "during login"),
      served(ok_packet(5), "during login"),
  };
  for (auto& op : after_login()) script.push_back(op);
  run_script(
      script, [] { return my_login("secret", tls_policy(config::ServerTlsMode::Prefer)); }, check_logged_in);
}

TEST_CASE("MySQL login: the server's refusal, and what Sluice refuses") {
  auto run_once = [](std::unique_ptr<pool::MysqlLogin> login, std::vector<Op> script) {
    return refused(*login, script);
  };
  std::string err;
  my::build_err(err, 1045, "28000", "Access denied for user 'app'@'localhost' (using password: YES)");
  auto r = run_once(
      my_login("wrong"),
      {served(greeting("mysql_native_password", false), ""),
       sent(response_bytes(expected_response("mysql_native_password", my::native_scramble("wrong", kNonce)), 1), ""),
       served(my_packet(err, 2), "")});
  CHECK(r.error.from_server);
  CHECK(r.error.mysql_code == 1045);
  CHECK(r.error.fields.code == "28000");

  r = run_once(my_login("secret", tls_policy(config::ServerTlsMode::Require)),
               {served(greeting("mysql_native_password", false), "")});
  CHECK(r.error.fields.message == kMyWhere + " does not offer TLS, and server_tls = \"require\" requires it");

  std::string sw;
  my::build_auth_switch(sw, "dialog", "x");
  r = run_once(
      my_login("secret"),
      {served(greeting("mysql_native_password", false), ""),
       sent(response_bytes(expected_response("mysql_native_password", my::native_scramble("secret", kNonce)), 1), ""),
       served(my_packet(sw, 2), "")});
  CHECK(r.error.fields.message == kMyWhere + " asks for authentication plugin 'dialog', which Sluice does not support");

  r = run_once(my_login("secret"), {served(std::string("\xff\xff\xff\x00", 4), "")});  // 16 MiB: past the bound
  CHECK(r.error.fields.message.find("malformed or oversized packet") != std::string::npos);
}

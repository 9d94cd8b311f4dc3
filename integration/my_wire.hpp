// Raw MySQL / MariaDB protocol for the differential wire tests: a login written from the
// protocol documentation (HandshakeV10, HandshakeResponse41 with MariaDB's extended capability
// bytes, mysql_native_password), the compressed protocol (zlib frames) when the login asks for
// CLIENT_COMPRESS (zstd frames for CLIENT_ZSTD_COMPRESSION_ALGORITHM, level 5), command builders, and a scripted exchange
// that reads whole responses by their documented shapes (OK / ERR / result sets with or without
// EOF packets / prepare answers / cursor fetches). Independent of Sluice's own codec on purpose:
// the test must not share Sluice's understanding of the protocol.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace sluice::itest::myw {

namespace cap {
inline constexpr std::uint32_t kClientMysql = 1, kFoundRows = 2, kLongFlag = 4, kConnectWithDb = 8,
                               kCompress = 32, kLocalFiles = 128, kProtocol41 = 512, kSsl = 2048,
                               kTransactions = 8192, kSecureConnection = 32768, kMultiStatements = 1u << 16,
                               kMultiResults = 1u << 17, kPsMultiResults = 1u << 18, kPluginAuth = 1u << 19,
                               kConnectAttrs = 1u << 20, kPluginAuthLenenc = 1u << 21,
                               kSessionTrack = 1u << 23, kDeprecateEof = 1u << 24, kZstd = 1u << 26;
// What a modern driver asks for (Connector/C with multi-statements).
inline constexpr std::uint32_t kDriver = kClientMysql | kLongFlag | kConnectWithDb | kProtocol41 | kTransactions |
                                         kSecureConnection | kMultiStatements | kMultiResults | kPsMultiResults |
                                         kPluginAuth | kPluginAuthLenenc | kConnectAttrs;
}  // namespace cap
// MariaDB extended capabilities (sent in the last 4 filler bytes when CLIENT_MYSQL is clear).
namespace mariadb {
inline constexpr std::uint32_t kProgress = 1, kStmtBulkOperations = 4, kExtendedMetadata = 8, kCacheMetadata = 16;
}

struct Greeting {
  std::string server_version;
  std::uint32_t connection_id = 0;
  std::string nonce;  // 20 bytes
  std::uint32_t capabilities = 0;
  std::uint32_t mariadb_capabilities = 0;
  std::uint8_t charset = 0;
  std::uint16_t status = 0;
  std::string plugin;
};

struct Login {
  std::string user = "app";
  std::string password = "app";
  std::string database = "app";
  std::uint32_t capabilities = cap::kDriver;
  std::uint32_t mariadb_capabilities = 0;  // sent only when the server clears CLIENT_MYSQL
  std::string plugin = "mysql_native_password";
};

using Packets = std::vector<std::string>;  // each: sequence id byte + payload; "#closed" at a close

struct Client {
  int fd = -1;
  Greeting greeting;
  std::uint32_t capabilities = 0;        // what the client sent
  std::uint32_t mariadb_capabilities = 0;  // what the client sent (0 unless the server offered)
  Packets login;                          // packets after the HandshakeResponse (auth switch, OK / ERR)
  bool ok = false;                        // the login ended in OK
  std::string password;
  int inflated_frames = 0;  // compressed protocol: frames received deflated (not stored)
  Client() = default;
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  Client(Client&& o) noexcept;
  ~Client();
};

// Connects to 127.0.0.1:port and logs in; the result says how the login went.
Client login(int port, const Login& how);

std::string native_scramble(const std::string& password, const std::string& nonce);

// Command payloads (sent with sequence id 0).
std::string query(const std::string& sql);
std::string prepare(const std::string& sql);
struct Param {
  std::uint16_t type = 0xFD;  // MYSQL_TYPE_VAR_STRING
  std::string value;          // binary-protocol bytes of the value
  bool null = false;
};
Param int_param(std::int64_t v);
Param str_param(const std::string& v);
Param double_param(double v);
Param null_param();
std::string execute(std::uint32_t stmt, const std::vector<Param>& params = {}, std::uint8_t flags = 0,
                    bool send_types = true);
std::string fetch(std::uint32_t stmt, std::uint32_t rows);
std::string close_stmt(std::uint32_t stmt);
std::string reset_stmt(std::uint32_t stmt);
std::string long_data(std::uint32_t stmt, std::uint16_t param, const std::string& data);
std::string simple(std::uint8_t command, const std::string& arg = "");
// COM_CHANGE_USER with a mysql_native_password scramble of the connection's nonce.
std::string change_user(const Client& c, const std::string& user, const std::string& password, const std::string& db);

enum class Expect {
  Result,      // OK, ERR, or result sets (following MORE_RESULTS_EXISTS)
  Rows,        // COM_STMT_FETCH: rows until EOF / ERR
  Fields,      // COM_FIELD_LIST: column definitions until EOF / ERR
  Prepare,     // COM_STMT_PREPARE answer
  Auth,        // COM_CHANGE_USER: answers auth switches with the step's password, then OK / ERR
  None,        // no answer (COM_STMT_CLOSE, COM_STMT_SEND_LONG_DATA)
  Closed,      // the peer closes (after an optional error packet)
};

struct Step {
  std::string payload;
  Expect expect = Expect::Result;
  std::string side_sql;   // run first, on a separate direct connection
  std::string password;   // Expect::Auth: the password for an auth switch
};

// Runs `steps`: every packet received, in order. Commands that name a statement (execute,
// fetch, close, reset, long data) name it by its order among this connection's prepares (1 =
// the first); the server's ids replace them, and prepare answers show the order, not the id. A 10 s silence where an answer is due fails
// the test (doctest).
Packets run_steps(Client& c, const std::vector<Step>& steps, const std::function<void(const std::string&)>& side);

// Legitimate differences removed: the nonce of an auth switch.
void normalize(Packets& p);
std::string describe_difference(const Packets& got, const Packets& want);
std::string describe_greeting(const Greeting& g);

}  // namespace sluice::itest::myw

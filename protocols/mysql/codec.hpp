// MySQL / MariaDB client/server protocol codec: packet framing (3-byte length + sequence id,
// payloads of 0xFFFFFF bytes continue in the next packet), length-encoded integers and strings,
// typed views of the messages the proxy reads, and builders that append to a buffer. Sans-io.
// Reference: MySQL "Client/Server Protocol" (dev.mysql.com/doc/dev/mysql-server/latest/
// PAGE_PROTOCOL.html) and MariaDB's "Clients & Connectors / MariaDB client/server protocol".
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::my {

using Bytes = std::span<const std::uint8_t>;

inline constexpr std::size_t kMaxPayload = 0xFFFFFF;  // a packet this long continues

// Capability flags (protocol "Capabilities Flags").
namespace cap {
inline constexpr std::uint32_t LONG_PASSWORD = 1, FOUND_ROWS = 2, LONG_FLAG = 4, CONNECT_WITH_DB = 8, NO_SCHEMA = 16,
                               COMPRESS = 32, ODBC = 64, LOCAL_FILES = 128, IGNORE_SPACE = 256, PROTOCOL_41 = 512,
                               INTERACTIVE = 1024, SSL = 2048, IGNORE_SIGPIPE = 4096, TRANSACTIONS = 8192,
                               RESERVED = 16384, SECURE_CONNECTION = 32768, MULTI_STATEMENTS = 1u << 16,
                               MULTI_RESULTS = 1u << 17, PS_MULTI_RESULTS = 1u << 18, PLUGIN_AUTH = 1u << 19,
                               CONNECT_ATTRS = 1u << 20, PLUGIN_AUTH_LENENC_CLIENT_DATA = 1u << 21,
                               CAN_HANDLE_EXPIRED_PASSWORDS = 1u << 22, SESSION_TRACK = 1u << 23,
                               DEPRECATE_EOF = 1u << 24, ZSTD_COMPRESSION = 1u << 26;
}
// MariaDB's extended capabilities: the 4 bytes after the reserved filler of the handshake and of
// the client's response, used when the sender clears LONG_PASSWORD ("CLIENT_MYSQL").
namespace mariadb_cap {
inline constexpr std::uint32_t PROGRESS = 1, COM_MULTI = 2, STMT_BULK_OPERATIONS = 4, EXTENDED_METADATA = 8,
                               CACHE_METADATA = 16, BULK_UNIT_RESULTS = 32;
}
// Server status flags (OK / EOF packets).
namespace status {
inline constexpr std::uint16_t IN_TRANS = 1, AUTOCOMMIT = 2, MORE_RESULTS_EXISTS = 8,
                               CURSOR_EXISTS = 64, LAST_ROW_SENT = 128, NO_BACKSLASH_ESCAPES = 512,
                               PS_OUT_PARAMS = 4096, IN_TRANS_READONLY = 8192,
                               SESSION_STATE_CHANGED = 1u << 14;
}
// Command bytes.
namespace com {
inline constexpr std::uint8_t SLEEP = 0x00, QUIT = 0x01, INIT_DB = 0x02, QUERY = 0x03,
                              FIELD_LIST = 0x04, STATISTICS = 0x09, PROCESS_INFO = 0x0a,
                              PROCESS_KILL = 0x0c, DEBUG = 0x0d, PING = 0x0e, CHANGE_USER = 0x11,
                              BINLOG_DUMP = 0x12, STMT_PREPARE = 0x16, STMT_EXECUTE = 0x17,
                              STMT_SEND_LONG_DATA = 0x18, STMT_CLOSE = 0x19, STMT_RESET = 0x1a,
                              SET_OPTION = 0x1b, STMT_FETCH = 0x1c, RESET_CONNECTION = 0x1f;
}
// Session state information types (OK packet, SESSION_TRACK).
namespace track {
inline constexpr std::uint8_t SYSTEM_VARIABLES = 0, SCHEMA = 1, STATE_CHANGE = 2, GTIDS = 3,
                              TRANSACTION_CHARACTERISTICS = 4, TRANSACTION_STATE = 5;
}

enum class Decode { Ok, NeedMore, Malformed };

// One physical packet: header (3-byte length, sequence id) and payload.
struct Packet {
  std::uint8_t seq = 0;
  Bytes payload;
  std::size_t size() const { return payload.size() + 4; }
  bool continued() const { return payload.size() == kMaxPayload; }
};
// Splits one physical packet off the front of `in`.
Decode next_packet(Bytes in, Packet& out);
// Reads the header only: payload length and sequence id (needs 4 bytes).
inline std::size_t payload_length(const std::uint8_t* h) {
  return std::size_t(h[0]) | (std::size_t(h[1]) << 8) | (std::size_t(h[2]) << 16);
}

// Joins one logical packet (physical packets chained by 0xFFFFFF lengths) off the front of `in`.
// `max_len` bounds the joined payload (Malformed past it). `consumed` = bytes of `in` used.
Decode next_message(Bytes in, std::size_t max_len, std::string& payload, std::uint8_t& last_seq,
                    std::size_t& consumed);

// Appends `payload` as one or more physical packets starting at sequence `seq`; returns the
// sequence id following the last packet written. A payload that is an exact multiple of
// 0xFFFFFF ends with an empty packet.
std::uint8_t append_packets(std::string& out, std::string_view payload, std::uint8_t seq);

// Bounds-checked little-endian cursor. Any overrun sets ok() to false and yields zeros.
class Reader {
 public:
  explicit Reader(Bytes b) : b_(b) {}
  explicit Reader(std::string_view s)
      : b_(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()) {}
  bool ok() const { return ok_; }
  bool at_end() const { return pos_ >= b_.size(); }
  std::size_t pos() const { return pos_; }
  std::size_t remaining() const { return ok_ ? b_.size() - pos_ : 0; }
  std::uint8_t u8();
  std::uint16_t u16();
  std::uint32_t u24();
  std::uint32_t u32();
  std::uint64_t u64();
  std::uint64_t lenenc();               // 0xFB (NULL) and 0xFF are malformed here
  std::optional<std::uint64_t> lenenc_nullable(bool& is_null);
  std::string_view lenenc_str();
  std::string_view cstr();              // NUL-terminated; the NUL is consumed
  std::string_view str(std::size_t n);
  std::string_view rest();
  void skip(std::size_t n);

 private:
  Bytes b_;
  std::size_t pos_ = 0;
  bool ok_ = true;
};

// Appends to a payload (no header; wrap with append_packets or Builder's framing).
void put_u8(std::string& out, std::uint8_t v);
void put_u16(std::string& out, std::uint16_t v);
void put_u24(std::string& out, std::uint32_t v);
// A packet header: the payload length (below 2^24) and the sequence id, in one append.
void put_header(std::string& out, std::size_t len, std::uint8_t seq);
void put_u32(std::string& out, std::uint32_t v);
void put_u64(std::string& out, std::uint64_t v);
void put_lenenc(std::string& out, std::uint64_t v);
void put_lenenc_str(std::string& out, std::string_view s);
// Number of bytes put_lenenc writes for `v`.
std::size_t lenenc_size(std::uint64_t v);

// ---- Connection phase ----------------------------------------------------------------------

struct Handshake {  // Protocol::HandshakeV10
  std::uint8_t protocol_version = 10;
  std::string server_version;
  std::uint32_t connection_id = 0;
  std::string nonce;  // 20 bytes: auth-plugin-data parts 1 and 2, without the trailing NUL
  std::uint32_t capabilities = 0;
  std::uint8_t charset = 0;
  std::uint16_t status = 0;
  std::uint32_t mariadb_capabilities = 0;  // when LONG_PASSWORD ("CLIENT_MYSQL") is clear
  std::string auth_plugin;
};
bool parse_handshake(Bytes payload, Handshake& out);
void build_handshake(std::string& payload, const Handshake& h);

struct HandshakeResponse {  // Protocol::HandshakeResponse41
  std::uint32_t capabilities = 0;
  std::uint32_t max_packet = 0;
  std::uint8_t charset = 0;
  std::string user;
  std::string auth_response;
  std::string database;
  std::string auth_plugin;
  std::vector<std::pair<std::string, std::string>> attributes;
  std::uint32_t mariadb_capabilities = 0;  // when LONG_PASSWORD ("CLIENT_MYSQL") is clear
  std::uint8_t zstd_level = 0;             // with ZSTD_COMPRESSION (and not COMPRESS): the last byte
  bool ssl_request_only = false;  // a 32-byte SSLRequest (no user yet)
};
bool parse_handshake_response(Bytes payload, HandshakeResponse& out);
void build_handshake_response(std::string& payload, const HandshakeResponse& r);
// The 32-byte SSLRequest: the response's capabilities (plus SSL), max packet and charset only.
void build_ssl_request(std::string& payload, const HandshakeResponse& r);

struct ChangeUser {  // COM_CHANGE_USER
  std::string user, auth_response, database, auth_plugin;
  std::uint16_t charset = 0;
  std::vector<std::pair<std::string, std::string>> attributes;
};
bool parse_change_user(Bytes payload, std::uint32_t client_caps, ChangeUser& out);

void build_auth_switch(std::string& payload, std::string_view plugin, std::string_view data);
struct AuthSwitch {
  std::string plugin, data;
};
bool parse_auth_switch(Bytes payload, AuthSwitch& out);  // payload starts with 0xFE

// ---- Generic responses ---------------------------------------------------------------------

struct Ok {
  std::uint8_t header = 0x00;  // 0x00, or 0xFE when it ends a result set (DEPRECATE_EOF)
  std::uint64_t affected_rows = 0, last_insert_id = 0;
  std::uint16_t status = 0, warnings = 0;
  std::string_view info;
  std::string_view session_state;  // raw session state changes, when SESSION_STATE_CHANGED
};
// `session_track`: the connection negotiated SESSION_TRACK (changes the layout after warnings).
bool parse_ok(Bytes payload, bool session_track, Ok& out);
void build_ok(std::string& payload, const Ok& ok, bool session_track);

struct Err {
  std::uint16_t code = 0;
  std::string sqlstate = "HY000";
  std::string message;
};
bool parse_err(Bytes payload, Err& out);
void build_err(std::string& payload, std::uint16_t code, std::string_view sqlstate,
               std::string_view message);

// An EOF packet (0xFE, fewer than 9 bytes) vs. an OK-as-EOF (0xFE, DEPRECATE_EOF) vs. a row.
inline bool is_eof_like(Bytes payload) {
  return !payload.empty() && payload[0] == 0xFE && payload.size() < kMaxPayload;
}
// Status flags of an EOF packet (0xFE warnings(2) status(2)), or of an OK-as-EOF.
std::uint16_t eof_status(Bytes payload, bool deprecate_eof, bool session_track);
void build_eof(std::string& payload, std::uint16_t warnings, std::uint16_t status);

// Session state changes in an OK packet: schema, system variables, and the generic flag.
struct SessionChanges {
  std::optional<std::string> schema;
  std::vector<std::pair<std::string, std::string>> variables;
  bool state_changed = false;  // SESSION_TRACK_STATE_CHANGE said "1"
};
bool parse_session_state(std::string_view state, SessionChanges& out);

// ---- Prepared statements -------------------------------------------------------------------

struct PrepareOk {  // COM_STMT_PREPARE_OK
  std::uint32_t statement_id = 0;
  std::uint16_t columns = 0, params = 0, warnings = 0;
};
bool parse_prepare_ok(Bytes payload, PrepareOk& out);

// Layout of a COM_STMT_EXECUTE payload, given the statement's parameter count.
struct ExecuteView {
  std::uint32_t statement_id = 0;
  std::uint8_t flags = 0;  // cursor type
  std::size_t null_bitmap_offset = 0, bound_flag_offset = 0;
  bool new_params_bound = false;
  std::size_t types_offset = 0, values_offset = 0;  // values_offset valid when bound
};
bool parse_execute(Bytes payload, std::uint16_t num_params, ExecuteView& out);
// Rewrites an execute that relies on previously sent parameter types (flag 0) into one that
// carries `types` (2 bytes per parameter) with the flag set, into `out` (replaced; its storage
// reused).
void execute_with_types(std::string& out, Bytes payload, const ExecuteView& v, std::string_view types);

// Patches the 4-byte statement id at payload offset 1 (EXECUTE, SEND_LONG_DATA, CLOSE, RESET,
// FETCH all place it there).
void patch_statement_id(std::uint8_t* payload, std::uint32_t id);

// ---- Commands Sluice sends -----------------------------------------------------------------
void build_command(std::string& payload, std::uint8_t command, std::string_view arg = {});

// ---- Authentication scrambles --------------------------------------------------------------
// mysql_native_password: SHA1(password) XOR SHA1(nonce + SHA1(SHA1(password))).
std::string native_scramble(std::string_view password, std::string_view nonce);
// Stored form "*" + 40 upper-case hex of SHA1(SHA1(password)).
std::string native_stored_hash(std::string_view password);
// Checks a client's scramble against the stored SHA1(SHA1(password)) (20 raw bytes); on success
// returns SHA1(password), which lets Sluice log in to servers with the same stored hash.
std::optional<std::string> native_verify(std::string_view scramble, std::string_view nonce,
                                         std::string_view stage2);
// caching_sha2_password: SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) + nonce).
std::string sha2_scramble(std::string_view password, std::string_view nonce);
bool sha2_verify(std::string_view scramble, std::string_view nonce, std::string_view password);
// The full path without TLS: the password XOR the nonce (repeated), RSA-OAEP encrypted.
std::string xor_with_nonce(std::string_view password_nul, std::string_view nonce);

inline std::string_view as_sv(Bytes b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }
inline Bytes as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// Well-known error codes Sluice emits (MySQL server error reference).
namespace er {
inline constexpr std::uint16_t CON_COUNT = 1040, HANDSHAKE = 1043, ACCESS_DENIED = 1045, NO_DB = 1046,
                               UNKNOWN_COM = 1047, BAD_DB = 1049, NET_READ = 1158, NET_PACKET_TOO_LARGE = 1153,
                               NO_SUCH_THREAD = 1094, KILL_DENIED = 1095, UNKNOWN_STMT_HANDLER = 1243,
                               QUERY_INTERRUPTED = 1317, LOCK_WAIT_TIMEOUT = 1205, NOT_SUPPORTED = 1235,
                               TOO_MANY_USER_CONN = 1203, MALFORMED = 1835;
// Sluice could not reach or log in to the server (SQLSTATE 08S01). Not a server code, like
// ProxySQL's: client libraries reject error packets that carry their own codes (2000-2999,
// e.g. 2003 "Can't connect"), reporting 2027 "Received malformed packet" instead.
inline constexpr std::uint16_t UPSTREAM_UNREACHABLE = 9001;
inline constexpr bool client_range(std::uint16_t code) { return code >= 2000 && code < 3000; }
}

}  // namespace sluice::my

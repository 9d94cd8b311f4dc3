// PostgreSQL frontend/backend protocol 3.0 codec: framing, typed views over byte spans, and
// builders that append to a buffer. Sans-io: no sockets, no allocation beyond the output buffer.
// Reference: PostgreSQL docs, chapter 55 "Frontend/Backend Protocol" (55.7 Message Formats).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::pg {

using Bytes = std::span<const std::uint8_t>;

// Special request codes in the startup packet (55.7: SSLRequest, GSSENCRequest, CancelRequest).
inline constexpr std::uint32_t kProtocolV3 = 196608;  // 3 << 16
inline constexpr std::uint32_t kCancelRequestCode = 80877102;
inline constexpr std::uint32_t kSslRequestCode = 80877103;
inline constexpr std::uint32_t kGssEncRequestCode = 80877104;
// PostgreSQL itself caps the startup packet at 10000 bytes (MAX_STARTUP_PACKET_LENGTH).
inline constexpr std::size_t kMaxStartupPacket = 10000;

enum class Decode { Ok, NeedMore, Malformed };

inline std::uint32_t load_u32(const std::uint8_t* p) {
  return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) |
         std::uint32_t(p[3]);
}
inline std::uint16_t load_u16(const std::uint8_t* p) {
  return std::uint16_t((std::uint16_t(p[0]) << 8) | std::uint16_t(p[1]));
}

// Bounds-checked cursor over a message body. Any overrun sets ok() to false and yields zeros.
class Reader {
 public:
  explicit Reader(Bytes b) : b_(b) {}
  bool ok() const { return ok_; }
  bool at_end() const { return pos_ == b_.size(); }
  std::size_t remaining() const { return b_.size() - pos_; }
  std::uint8_t u8();
  std::int16_t i16();
  std::int32_t i32();
  std::uint32_t u32() { return static_cast<std::uint32_t>(i32()); }
  std::uint64_t u64();
  std::string_view cstr();  // NUL-terminated string; the NUL is consumed
  Bytes bytes(std::size_t n);
  Bytes rest();

 private:
  Bytes b_;
  std::size_t pos_ = 0;
  bool ok_ = true;
};

// A typed message: 1 type byte, Int32 length (counts itself), body.
struct Frame {
  char type = 0;
  Bytes body;
  std::size_t size() const { return body.size() + 5; }
};

// Splits one typed message off the front of `in`. Lengths below 4 or above `max_len` are malformed.
Decode next_frame(Bytes in, std::size_t max_len, Frame& out);

// The untyped first packet: StartupMessage, SSLRequest, GSSENCRequest or CancelRequest.
struct StartupPacket {
  std::uint32_t code = 0;  // protocol version or a special request code
  std::vector<std::pair<std::string, std::string>> params;
  std::uint32_t cancel_pid = 0, cancel_key = 0;
  const std::string* find(std::string_view name) const;
};
// Parses a whole startup-phase packet; `consumed` is set when Ok.
Decode parse_startup(Bytes in, StartupPacket& out, std::size_t& consumed);

// Fields of ErrorResponse / NoticeResponse (55.8 Error and Notice Message Fields).
struct ErrorFields {
  std::string severity, code, message, detail, hint;
};
bool parse_error_fields(Bytes body, ErrorFields& out);

// Views of frontend messages the proxy rewrites.
struct ParseView {
  std::string_view name, query;
  Bytes param_types;  // Int16 count + Int32 OIDs, as sent
};
bool parse_parse(Bytes body, ParseView& out);
struct BindHead {
  std::string_view portal, statement;
  std::size_t rest_offset = 0;  // offset of the parameter format codes in the body
};
bool parse_bind_head(Bytes body, BindHead& out);
struct TargetView {  // Describe and Close: 'S' statement or 'P' portal, and a name
  char kind = 0;
  std::string_view name;
};
bool parse_target(Bytes body, TargetView& out);
bool parse_parameter_status(Bytes body, std::string_view& name, std::string_view& value);

// Appends messages to a buffer. begin() writes the type and a length placeholder; end() patches it.
class Builder {
 public:
  explicit Builder(std::string& out) : out_(out) {}
  Builder& begin(char type);
  Builder& begin_untyped();
  Builder& i8(std::uint8_t v);
  Builder& i16(std::int16_t v);
  Builder& i32(std::int32_t v);
  Builder& str(std::string_view s);  // with NUL terminator
  Builder& raw(std::string_view s);
  Builder& raw(Bytes b);
  void end();

 private:
  std::string& out_;
  std::size_t start_ = 0;
};

// Backend messages.
void auth_ok(std::string& out);
void auth_cleartext(std::string& out);
void auth_md5(std::string& out, const std::uint8_t salt[4]);
void auth_sasl(std::string& out, std::string_view mechanism);
void auth_sasl_continue(std::string& out, std::string_view data);
void auth_sasl_final(std::string& out, std::string_view data);
void parameter_status(std::string& out, std::string_view name, std::string_view value);
void backend_key_data(std::string& out, std::uint32_t pid, std::uint32_t key);
void ready_for_query(std::string& out, char status);
void error_response(std::string& out, std::string_view severity, std::string_view sqlstate,
                    std::string_view message, std::string_view detail = {},
                    std::string_view hint = {});
// The same fields, as a NoticeResponse (severity WARNING, NOTICE, ...).
void notice_response(std::string& out, std::string_view severity, std::string_view sqlstate, std::string_view message,
                     std::string_view detail = {}, std::string_view hint = {});
void parse_complete(std::string& out);
void close_complete(std::string& out);

// Frontend messages.
void startup_message(std::string& out,
                     const std::vector<std::pair<std::string, std::string>>& params);
void cancel_request(std::string& out, std::uint32_t pid, std::uint32_t key);
void ssl_request(std::string& out);
void query(std::string& out, std::string_view sql);
// Quoting for Sluice's own SQL: an identifier ("..." with "" for a quote), and a literal
// (E'...' with '' and \\ doubled: right whatever standard_conforming_strings is).
std::string quote_ident(std::string_view name);
std::string quote_literal(std::string_view value);
void password_message(std::string& out, std::string_view password);
void sasl_initial_response(std::string& out, std::string_view mechanism, std::string_view data);
void sasl_response(std::string& out, std::string_view data);
void parse_message(std::string& out, std::string_view name, std::string_view query,
                   Bytes param_types);
void close_message(std::string& out, char kind, std::string_view name);
void sync_message(std::string& out);
void terminate_message(std::string& out);

// Frontend message types (55.7).
namespace fe {
inline constexpr char Bind = 'B', Close = 'C', CopyData = 'd', CopyDone = 'c', CopyFail = 'f',
                      Describe = 'D', Execute = 'E', Flush = 'H', FunctionCall = 'F', Parse = 'P',
                      Password = 'p', Query = 'Q', Sync = 'S', Terminate = 'X';
}
// Backend message types (55.7).
namespace be {
inline constexpr char Authentication = 'R', BackendKeyData = 'K', BindComplete = '2',
                      CloseComplete = '3', CommandComplete = 'C', CopyData = 'd', CopyDone = 'c',
                      CopyInResponse = 'G', CopyOutResponse = 'H', CopyBothResponse = 'W',
                      DataRow = 'D', EmptyQueryResponse = 'I', ErrorResponse = 'E',
                      FunctionCallResponse = 'V', NegotiateProtocolVersion = 'v', NoData = 'n',
                      NoticeResponse = 'N', NotificationResponse = 'A',
                      ParameterDescription = 't', ParameterStatus = 'S', ParseComplete = '1',
                      PortalSuspended = 's', ReadyForQuery = 'Z', RowDescription = 'T';
}

inline std::string_view as_sv(Bytes b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}
inline Bytes as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

}  // namespace sluice::pg

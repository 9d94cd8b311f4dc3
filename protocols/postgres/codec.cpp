// PostgreSQL protocol 3.0 framing, parsers and builders (docs chapter 55.7 "Message Formats").
#include "protocols/postgres/codec.hpp"

#include <cstring>

namespace sluice::pg {

std::uint8_t Reader::u8() {
  if (!ok_ || remaining() < 1) return ok_ = false, 0;
  return b_[pos_++];
}
std::int16_t Reader::i16() {
  if (!ok_ || remaining() < 2) return ok_ = false, 0;
  auto v = static_cast<std::int16_t>(load_u16(b_.data() + pos_));
  pos_ += 2;
  return v;
}
std::int32_t Reader::i32() {
  if (!ok_ || remaining() < 4) return ok_ = false, 0;
  auto v = static_cast<std::int32_t>(load_u32(b_.data() + pos_));
  pos_ += 4;
  return v;
}
std::uint64_t Reader::u64() {
  std::uint64_t hi = u32();
  return (hi << 32) | u32();
}
std::string_view Reader::cstr() {
  if (!ok_) return {};
  const void* nul = std::memchr(b_.data() + pos_, 0, remaining());
  if (!nul) return ok_ = false, std::string_view{};
  auto len = static_cast<std::size_t>(static_cast<const std::uint8_t*>(nul) - (b_.data() + pos_));
  std::string_view s(reinterpret_cast<const char*>(b_.data() + pos_), len);
  pos_ += len + 1;
  return s;
}
Bytes Reader::bytes(std::size_t n) {
  if (!ok_ || remaining() < n) return ok_ = false, Bytes{};
  Bytes r = b_.subspan(pos_, n);
  pos_ += n;
  return r;
}
Bytes Reader::rest() {
  if (!ok_) return {};
  Bytes r = b_.subspan(pos_);
  pos_ = b_.size();
  return r;
}

Decode next_frame(Bytes in, std::size_t max_len, Frame& out) {
  if (in.size() < 5) return Decode::NeedMore;
  std::uint32_t len = load_u32(in.data() + 1);
  if (len < 4 || len > max_len) return Decode::Malformed;
  if (in.size() < std::size_t(len) + 1) return Decode::NeedMore;
  out.type = static_cast<char>(in[0]);
  out.body = in.subspan(5, len - 4);
  return Decode::Ok;
}

const std::string* StartupPacket::find(std::string_view name) const {
  for (const auto& [k, v] : params)
    if (k == name) return &v;
  return nullptr;
}

Decode parse_startup(Bytes in, StartupPacket& out, std::size_t& consumed) {
  if (in.size() < 4) return Decode::NeedMore;
  std::uint32_t len = load_u32(in.data());
  if (len < 8 || len > kMaxStartupPacket) return Decode::Malformed;
  if (in.size() < len) return Decode::NeedMore;
  Reader r(in.subspan(4, len - 4));
  out = StartupPacket{};
  out.code = static_cast<std::uint32_t>(r.i32());
  if (out.code == kSslRequestCode || out.code == kGssEncRequestCode) {
    if (len != 8) return Decode::Malformed;
  } else if (out.code == kCancelRequestCode) {
    if (len != 16) return Decode::Malformed;
    out.cancel_pid = static_cast<std::uint32_t>(r.i32());
    out.cancel_key = static_cast<std::uint32_t>(r.i32());
  } else {
    // StartupMessage: name/value pairs terminated by an empty name (55.7 StartupMessage).
    for (;;) {
      std::string_view name = r.cstr();
      if (!r.ok()) return Decode::Malformed;
      if (name.empty()) break;
      std::string_view value = r.cstr();
      if (!r.ok()) return Decode::Malformed;
      out.params.emplace_back(std::string(name), std::string(value));
    }
    if (!r.at_end()) return Decode::Malformed;
  }
  consumed = len;
  return Decode::Ok;
}

bool parse_error_fields(Bytes body, ErrorFields& out) {
  Reader r(body);
  for (;;) {
    std::uint8_t f = r.u8();
    if (!r.ok()) return false;
    if (f == 0) break;
    std::string_view v = r.cstr();
    if (!r.ok()) return false;
    switch (f) {
      case 'V': out.severity = v; break;
      case 'S': if (out.severity.empty()) out.severity = v; break;
      case 'C': out.code = v; break;
      case 'M': out.message = v; break;
      case 'D': out.detail = v; break;
      case 'H': out.hint = v; break;
      default: break;
    }
  }
  return true;
}

bool parse_parse(Bytes body, ParseView& out) {
  Reader r(body);
  out.name = r.cstr();
  out.query = r.cstr();
  out.param_types = r.rest();
  if (!r.ok() || out.param_types.size() < 2) return false;
  std::size_t n = load_u16(out.param_types.data());
  return out.param_types.size() == 2 + 4 * n;
}

bool parse_bind_head(Bytes body, BindHead& out) {
  Reader r(body);
  out.portal = r.cstr();
  out.statement = r.cstr();
  if (!r.ok()) return false;
  out.rest_offset = body.size() - r.remaining();
  return true;
}

bool parse_target(Bytes body, TargetView& out) {
  Reader r(body);
  out.kind = static_cast<char>(r.u8());
  out.name = r.cstr();
  return r.ok() && r.at_end() && (out.kind == 'S' || out.kind == 'P');
}

bool parse_parameter_status(Bytes body, std::string_view& name, std::string_view& value) {
  Reader r(body);
  name = r.cstr();
  value = r.cstr();
  return r.ok() && r.at_end();
}

Builder& Builder::begin(char type) {
  out_.push_back(type);
  start_ = out_.size();
  out_.append(4, '\0');
  return *this;
}
Builder& Builder::begin_untyped() {
  start_ = out_.size();
  out_.append(4, '\0');
  return *this;
}
Builder& Builder::i8(std::uint8_t v) {
  out_.push_back(static_cast<char>(v));
  return *this;
}
Builder& Builder::i16(std::int16_t v) {
  auto u = static_cast<std::uint16_t>(v);
  out_.push_back(static_cast<char>(u >> 8));
  out_.push_back(static_cast<char>(u & 0xff));
  return *this;
}
Builder& Builder::i32(std::int32_t v) {
  auto u = static_cast<std::uint32_t>(v);
  for (int shift = 24; shift >= 0; shift -= 8) out_.push_back(static_cast<char>((u >> shift) & 0xff));
  return *this;
}
Builder& Builder::str(std::string_view s) {
  out_.append(s);
  out_.push_back('\0');
  return *this;
}
Builder& Builder::raw(std::string_view s) {
  out_.append(s);
  return *this;
}
Builder& Builder::raw(Bytes b) { return raw(as_sv(b)); }
void Builder::end() {
  auto len = static_cast<std::uint32_t>(out_.size() - start_);
  for (int i = 0; i < 4; ++i) out_[start_ + i] = static_cast<char>((len >> (24 - 8 * i)) & 0xff);
}

void auth_ok(std::string& out) { Builder(out).begin(be::Authentication).i32(0).end(); }
void auth_cleartext(std::string& out) { Builder(out).begin(be::Authentication).i32(3).end(); }
void auth_md5(std::string& out, const std::uint8_t salt[4]) {
  Builder(out)
      .begin(be::Authentication)
      .i32(5)
      .raw(std::string_view(reinterpret_cast<const char*>(salt), 4))
      .end();
}
void auth_sasl(std::string& out, std::string_view mechanism) {
  Builder(out).begin(be::Authentication).i32(10).str(mechanism).i8(0).end();
}
void auth_sasl_continue(std::string& out, std::string_view data) {
  Builder(out).begin(be::Authentication).i32(11).raw(data).end();
}
void auth_sasl_final(std::string& out, std::string_view data) {
  Builder(out).begin(be::Authentication).i32(12).raw(data).end();
}
void parameter_status(std::string& out, std::string_view name, std::string_view value) {
  Builder(out).begin(be::ParameterStatus).str(name).str(value).end();
}
void backend_key_data(std::string& out, std::uint32_t pid, std::uint32_t key) {
  Builder(out)
      .begin(be::BackendKeyData)
      .i32(static_cast<std::int32_t>(pid))
      .i32(static_cast<std::int32_t>(key))
      .end();
}
void ready_for_query(std::string& out, char status) {
  Builder(out).begin(be::ReadyForQuery).i8(static_cast<std::uint8_t>(status)).end();
}
namespace {
void fields_message(std::string& out, char type, std::string_view severity, std::string_view sqlstate,
                    std::string_view message, std::string_view detail, std::string_view hint) {
  Builder b(out);
  b.begin(type).i8('S').str(severity).i8('V').str(severity).i8('C').str(sqlstate);
  b.i8('M').str(message);
  if (!detail.empty()) b.i8('D').str(detail);
  if (!hint.empty()) b.i8('H').str(hint);
  b.i8(0).end();
}
}  // namespace

void error_response(std::string& out, std::string_view severity, std::string_view sqlstate, std::string_view message,
                    std::string_view detail, std::string_view hint) {
  fields_message(out, be::ErrorResponse, severity, sqlstate, message, detail, hint);
}
void notice_response(std::string& out, std::string_view severity, std::string_view sqlstate, std::string_view message,
                     std::string_view detail, std::string_view hint) {
  fields_message(out, be::NoticeResponse, severity, sqlstate, message, detail, hint);
}
void parse_complete(std::string& out) { Builder(out).begin(be::ParseComplete).end(); }
void close_complete(std::string& out) { Builder(out).begin(be::CloseComplete).end(); }

void startup_message(std::string& out,
                     const std::vector<std::pair<std::string, std::string>>& params) {
  Builder b(out);
  b.begin_untyped().i32(static_cast<std::int32_t>(kProtocolV3));
  for (const auto& [k, v] : params) b.str(k).str(v);
  b.i8(0).end();
}
void cancel_request(std::string& out, std::uint32_t pid, std::uint32_t key) {
  Builder(out)
      .begin_untyped()
      .i32(static_cast<std::int32_t>(kCancelRequestCode))
      .i32(static_cast<std::int32_t>(pid))
      .i32(static_cast<std::int32_t>(key))
      .end();
}
void ssl_request(std::string& out) {
  Builder(out).begin_untyped().i32(static_cast<std::int32_t>(kSslRequestCode)).end();
}
std::string quote_ident(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + '"';
}

std::string quote_literal(std::string_view value) {
  std::string out = "E'";
  for (char c : value) {
    if (c == '\'' || c == '\\') out += c;
    out += c;
  }
  return out + '\'';
}

void query(std::string& out, std::string_view sql) {
  Builder(out).begin(fe::Query).str(sql).end();
}
void password_message(std::string& out, std::string_view password) {
  Builder(out).begin(fe::Password).str(password).end();
}
void sasl_initial_response(std::string& out, std::string_view mechanism, std::string_view data) {
  Builder(out)
      .begin(fe::Password)
      .str(mechanism)
      .i32(static_cast<std::int32_t>(data.size()))
      .raw(data)
      .end();
}
void sasl_response(std::string& out, std::string_view data) {
  Builder(out).begin(fe::Password).raw(data).end();
}
void parse_message(std::string& out, std::string_view name, std::string_view query,
                   Bytes param_types) {
  Builder(out).begin(fe::Parse).str(name).str(query).raw(param_types).end();
}
void close_message(std::string& out, char kind, std::string_view name) {
  Builder(out).begin(fe::Close).i8(static_cast<std::uint8_t>(kind)).str(name).end();
}
void sync_message(std::string& out) { Builder(out).begin(fe::Sync).end(); }
void terminate_message(std::string& out) { Builder(out).begin(fe::Terminate).end(); }

}  // namespace sluice::pg

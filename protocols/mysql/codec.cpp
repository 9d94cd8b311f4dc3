// MySQL / MariaDB protocol codec (see codec.hpp for the references).
#include "protocols/mysql/codec.hpp"

#include <cstring>

#include "protocols/common/crypto.hpp"

namespace sluice::my {

Decode next_packet(Bytes in, Packet& out) {
  if (in.size() < 4) return Decode::NeedMore;
  std::size_t len = payload_length(in.data());
  if (in.size() < 4 + len) return Decode::NeedMore;
  out.seq = in[3];
  out.payload = in.subspan(4, len);
  return Decode::Ok;
}

Decode next_message(Bytes in, std::size_t max_len, std::string& payload, std::uint8_t& last_seq,
                    std::size_t& consumed) {
  // First pass: find the end without copying, so a half-received message costs nothing.
  std::size_t pos = 0, total = 0;
  for (;;) {
    if (in.size() - pos < 4) return Decode::NeedMore;
    std::size_t len = payload_length(in.data() + pos);
    total += len;
    if (total > max_len) return Decode::Malformed;
    if (in.size() - pos - 4 < len) return Decode::NeedMore;
    pos += 4 + len;
    if (len < kMaxPayload) break;
  }
  payload.clear();
  payload.reserve(total);
  std::size_t p = 0;
  while (p < pos) {
    std::size_t len = payload_length(in.data() + p);
    last_seq = in[p + 3];
    payload.append(reinterpret_cast<const char*>(in.data() + p + 4), len);
    p += 4 + len;
  }
  consumed = pos;
  return Decode::Ok;
}

std::uint8_t append_packets(std::string& out, std::string_view payload, std::uint8_t seq) {
  std::size_t off = 0;
  for (;;) {
    std::size_t n = std::min(payload.size() - off, kMaxPayload);
    put_header(out, n, seq++);
    out.append(payload.data() + off, n);
    off += n;
    if (n < kMaxPayload) return seq;
  }
}

// ---- Reader ----

std::uint8_t Reader::u8() {
  if (!ok_ || pos_ + 1 > b_.size()) return ok_ = false, 0;
  return b_[pos_++];
}
std::uint16_t Reader::u16() {
  if (!ok_ || pos_ + 2 > b_.size()) return ok_ = false, 0;
  std::uint16_t v = std::uint16_t(b_[pos_] | (b_[pos_ + 1] << 8));
  pos_ += 2;
  return v;
}
std::uint32_t Reader::u24() {
  if (!ok_ || pos_ + 3 > b_.size()) return ok_ = false, 0;
  std::uint32_t v = std::uint32_t(b_[pos_]) | (std::uint32_t(b_[pos_ + 1]) << 8) | (std::uint32_t(b_[pos_ + 2]) << 16);
  pos_ += 3;
  return v;
}
std::uint32_t Reader::u32() {
  if (!ok_ || pos_ + 4 > b_.size()) return ok_ = false, 0;
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | b_[pos_ + i];
  pos_ += 4;
  return v;
}
std::uint64_t Reader::u64() {
  if (!ok_ || pos_ + 8 > b_.size()) return ok_ = false, 0;
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | b_[pos_ + i];
  pos_ += 8;
  return v;
}
std::optional<std::uint64_t> Reader::lenenc_nullable(bool& is_null) {
  is_null = false;
  std::uint8_t first = u8();
  if (!ok_) return std::nullopt;
  if (first < 0xFB) return first;
  if (first == 0xFB) {
    is_null = true;
    return std::nullopt;
  }
  if (first == 0xFC) return u16();
  if (first == 0xFD) return u24();
  if (first == 0xFE) return u64();
  ok_ = false;  // 0xFF: an ERR header, never an integer
  return std::nullopt;
}
std::uint64_t Reader::lenenc() {
  bool is_null = false;
  auto v = lenenc_nullable(is_null);
  if (!v) {
    ok_ = false;
    return 0;
  }
  return *v;
}
std::string_view Reader::str(std::size_t n) {
  if (!ok_ || n > b_.size() - pos_) return ok_ = false, std::string_view{};
  std::string_view s(reinterpret_cast<const char*>(b_.data() + pos_), n);
  pos_ += n;
  return s;
}
std::string_view Reader::lenenc_str() {
  std::uint64_t n = lenenc();
  if (!ok_ || n > b_.size() - pos_) return ok_ = false, std::string_view{};
  return str(static_cast<std::size_t>(n));
}
std::string_view Reader::cstr() {
  if (!ok_) return {};
  const void* nul = std::memchr(b_.data() + pos_, 0, b_.size() - pos_);
  if (!nul) return ok_ = false, std::string_view{};
  std::size_t n = static_cast<const std::uint8_t*>(nul) - (b_.data() + pos_);
  auto s = str(n);
  ++pos_;
  return s;
}
std::string_view Reader::rest() { return ok_ ? str(b_.size() - pos_) : std::string_view{}; }
void Reader::skip(std::size_t n) {
  if (!ok_ || n > b_.size() - pos_) ok_ = false;
  else pos_ += n;
}

// ---- Writers ----

void put_u8(std::string& out, std::uint8_t v) { out.push_back(static_cast<char>(v)); }
namespace {
// The low `N` bytes of `v`, little-endian, in one append (one capacity check, not N).
template <std::size_t N>
void put_le(std::string& out, std::uint64_t v) {
  char b[N];
  for (std::size_t i = 0; i < N; ++i) b[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
  out.append(b, N);
}
}  // namespace

void put_u16(std::string& out, std::uint16_t v) { put_le<2>(out, v); }
void put_u24(std::string& out, std::uint32_t v) { put_le<3>(out, v); }
void put_u32(std::string& out, std::uint32_t v) { put_le<4>(out, v); }
void put_u64(std::string& out, std::uint64_t v) { put_le<8>(out, v); }
void put_header(std::string& out, std::size_t len, std::uint8_t seq) {
  put_le<4>(out, (len & 0xFFFFFF) | (std::uint64_t{seq} << 24));
}
void put_lenenc(std::string& out, std::uint64_t v) {
  if (v < 0xFB) {
    put_u8(out, static_cast<std::uint8_t>(v));
  } else if (v <= 0xFFFF) {
    put_u8(out, 0xFC);
    put_u16(out, static_cast<std::uint16_t>(v));
  } else if (v <= 0xFFFFFF) {
    put_u8(out, 0xFD);
    put_u24(out, static_cast<std::uint32_t>(v));
  } else {
    put_u8(out, 0xFE);
    put_u64(out, v);
  }
}
std::size_t lenenc_size(std::uint64_t v) {
  return v < 0xFB ? 1 : v <= 0xFFFF ? 3 : v <= 0xFFFFFF ? 4 : 9;
}
void put_lenenc_str(std::string& out, std::string_view s) {
  put_lenenc(out, s.size());
  out.append(s);
}

// ---- Connection phase ----

bool parse_handshake(Bytes payload, Handshake& h) {
  Reader r(payload);
  h.protocol_version = r.u8();
  if (h.protocol_version != 10) return false;
  h.server_version = std::string(r.cstr());
  h.connection_id = r.u32();
  h.nonce = std::string(r.str(8));
  r.u8();
  h.capabilities = r.u16();
  if (r.at_end()) return r.ok();
  h.charset = r.u8();
  h.status = r.u16();
  h.capabilities |= std::uint32_t(r.u16()) << 16;
  std::uint8_t data_len = r.u8();
  r.skip(6);
  h.mariadb_capabilities = r.u32();
  if (h.capabilities & cap::LONG_PASSWORD) h.mariadb_capabilities = 0;
  if (h.capabilities & cap::SECURE_CONNECTION) {
    std::size_t n = std::max<int>(13, int(data_len) - 8);
    auto part2 = r.str(std::min(n, r.remaining()));
    if (!part2.empty() && part2.back() == '\0') part2.remove_suffix(1);
    h.nonce += part2;
  }
  if ((h.capabilities & cap::PLUGIN_AUTH) && r.ok() && !r.at_end()) {
    auto rest = r.rest();
    auto nul = rest.find('\0');
    h.auth_plugin = std::string(rest.substr(0, nul));
  }
  return r.ok();
}

void build_handshake(std::string& out, const Handshake& h) {
  put_u8(out, h.protocol_version);
  out.append(h.server_version);
  out.push_back('\0');
  put_u32(out, h.connection_id);
  out.append(h.nonce.substr(0, 8));
  put_u8(out, 0);
  put_u16(out, static_cast<std::uint16_t>(h.capabilities & 0xFFFF));
  put_u8(out, h.charset);
  put_u16(out, h.status);
  put_u16(out, static_cast<std::uint16_t>(h.capabilities >> 16));
  put_u8(out, static_cast<std::uint8_t>(h.nonce.size() + 1));
  out.append(6, '\0');
  put_u32(out, h.mariadb_capabilities);
  out.append(h.nonce.substr(8));
  out.push_back('\0');
  out.append(h.auth_plugin);
  out.push_back('\0');
}

bool parse_handshake_response(Bytes payload, HandshakeResponse& out) {
  Reader r(payload);
  out.capabilities = r.u32();
  if (!(out.capabilities & cap::PROTOCOL_41)) return false;  // pre-4.1 clients are not served
  out.max_packet = r.u32();
  out.charset = r.u8();
  r.skip(19);
  out.mariadb_capabilities = r.u32();
  if (out.capabilities & cap::LONG_PASSWORD) out.mariadb_capabilities = 0;
  if (!r.ok()) return false;
  if (r.at_end()) {
    out.ssl_request_only = true;
    return true;
  }
  out.user = std::string(r.cstr());
  if (out.capabilities & cap::PLUGIN_AUTH_LENENC_CLIENT_DATA) {
    out.auth_response = std::string(r.lenenc_str());
  } else if (out.capabilities & cap::SECURE_CONNECTION) {
    out.auth_response = std::string(r.str(r.u8()));
  } else {
    out.auth_response = std::string(r.cstr());
  }
  if ((out.capabilities & cap::CONNECT_WITH_DB) && !r.at_end()) out.database = std::string(r.cstr());
  if ((out.capabilities & cap::PLUGIN_AUTH) && !r.at_end()) {
    // Some clients omit the final NUL.
    auto rest = r.rest();
    auto nul = rest.find('\0');
    out.auth_plugin = std::string(rest.substr(0, nul));
    if (nul == std::string_view::npos) return r.ok();
    Reader again(rest.substr(nul + 1));
    r = again;
  }
  if ((out.capabilities & cap::CONNECT_ATTRS) && r.ok() && !r.at_end()) {
    std::uint64_t total = r.lenenc();
    if (!r.ok() || total > r.remaining()) return false;
    Reader a(r.str(static_cast<std::size_t>(total)));
    while (a.ok() && !a.at_end()) {
      auto k = a.lenenc_str();
      auto v = a.lenenc_str();
      if (a.ok()) out.attributes.emplace_back(k, v);
    }
    if (!a.ok()) return false;
  }
  // zstd compression chosen (zlib wins when both flags are set): its level comes last.
  if ((out.capabilities & cap::ZSTD_COMPRESSION) && !(out.capabilities & cap::COMPRESS) && r.ok() && !r.at_end())
    out.zstd_level = r.u8();
  return r.ok();
}

namespace {
void put_filler(std::string& out, const HandshakeResponse& h) {
  out.append(19, '\0');
  put_u32(out, (h.capabilities & cap::LONG_PASSWORD) ? 0 : h.mariadb_capabilities);
}
}  // namespace

void build_ssl_request(std::string& out, const HandshakeResponse& h) {
  put_u32(out, h.capabilities | cap::SSL);
  put_u32(out, h.max_packet);
  put_u8(out, h.charset);
  put_filler(out, h);
}

void build_handshake_response(std::string& out, const HandshakeResponse& h) {
  put_u32(out, h.capabilities);
  put_u32(out, h.max_packet);
  put_u8(out, h.charset);
  put_filler(out, h);
  out.append(h.user);
  out.push_back('\0');
  if (h.capabilities & cap::PLUGIN_AUTH_LENENC_CLIENT_DATA) {
    put_lenenc_str(out, h.auth_response);
  } else {
    put_u8(out, static_cast<std::uint8_t>(h.auth_response.size()));
    out.append(h.auth_response);
  }
  if (h.capabilities & cap::CONNECT_WITH_DB) {
    out.append(h.database);
    out.push_back('\0');
  }
  if (h.capabilities & cap::PLUGIN_AUTH) {
    out.append(h.auth_plugin);
    out.push_back('\0');
  }
  if (h.capabilities & cap::CONNECT_ATTRS) {
    std::string attrs;
    for (auto& [k, v] : h.attributes) {
      put_lenenc_str(attrs, k);
      put_lenenc_str(attrs, v);
    }
    put_lenenc_str(out, attrs);
  }
}

bool parse_change_user(Bytes payload, std::uint32_t caps, ChangeUser& out) {
  Reader r(payload);
  if (r.u8() != com::CHANGE_USER) return false;
  out.user = std::string(r.cstr());
  if (caps & cap::SECURE_CONNECTION) out.auth_response = std::string(r.str(r.u8()));
  else out.auth_response = std::string(r.cstr());
  out.database = std::string(r.cstr());
  if (!r.ok()) return false;
  if (r.remaining() >= 2) out.charset = r.u16();
  if ((caps & cap::PLUGIN_AUTH) && !r.at_end()) {
    auto rest = r.rest();
    auto nul = rest.find('\0');
    out.auth_plugin = std::string(rest.substr(0, nul));
    if (nul == std::string_view::npos) return true;
    r = Reader(rest.substr(nul + 1));
  }
  if ((caps & cap::CONNECT_ATTRS) && r.ok() && !r.at_end()) {
    std::uint64_t total = r.lenenc();
    if (!r.ok() || total > r.remaining()) return false;
    Reader a(r.str(static_cast<std::size_t>(total)));
    while (a.ok() && !a.at_end()) {
      auto k = a.lenenc_str();
      auto v = a.lenenc_str();
      if (a.ok()) out.attributes.emplace_back(k, v);
    }
  }
  return r.ok();
}

void build_auth_switch(std::string& out, std::string_view plugin, std::string_view data) {
  put_u8(out, 0xFE);
  out.append(plugin);
  out.push_back('\0');
  out.append(data);
}

bool parse_auth_switch(Bytes payload, AuthSwitch& out) {
  Reader r(payload);
  if (r.u8() != 0xFE) return false;
  if (r.at_end()) {  // old "use the 3.23 scramble" request: not supported
    return false;
  }
  out.plugin = std::string(r.cstr());
  auto rest = r.rest();
  // mysql_native_password and caching_sha2_password send their 20-byte scramble with a
  // terminating NUL; MariaDB's client_ed25519 sends a bare 32-byte nonce whose last byte may be 0.
  if (!rest.empty() && rest.back() == '\0' && out.plugin != "client_ed25519") rest.remove_suffix(1);
  out.data = std::string(rest);
  return r.ok();
}

// ---- Generic responses ----

bool parse_ok(Bytes payload, bool session_track, Ok& out) {
  Reader r(payload);
  out.header = r.u8();
  if (out.header != 0x00 && out.header != 0xFE) return false;
  out.affected_rows = r.lenenc();
  out.last_insert_id = r.lenenc();
  out.status = r.u16();
  out.warnings = r.u16();
  out.info = {};
  out.session_state = {};
  if (!r.ok()) return false;
  if (session_track) {
    if (!r.at_end()) out.info = r.lenenc_str();
    if ((out.status & status::SESSION_STATE_CHANGED) && r.ok() && !r.at_end()) out.session_state = r.lenenc_str();
  } else if (!r.at_end()) {
    // The protocol documents string<EOF> here, but servers write (and client libraries read) a
    // length-encoded string; take it when it spans the rest exactly.
    Reader probe = r;
    auto info = probe.lenenc_str();
    out.info = probe.ok() && probe.at_end() ? info : r.rest();
  }
  return r.ok();
}

void build_ok(std::string& out, const Ok& ok, bool session_track) {
  put_u8(out, ok.header);
  put_lenenc(out, ok.affected_rows);
  put_lenenc(out, ok.last_insert_id);
  std::uint16_t st = ok.status;
  if (!session_track || ok.session_state.empty()) st &= static_cast<std::uint16_t>(~status::SESSION_STATE_CHANGED);
  put_u16(out, st);
  put_u16(out, ok.warnings);
  if (session_track) {
    if (!ok.info.empty() || !ok.session_state.empty()) put_lenenc_str(out, ok.info);
    if (!ok.session_state.empty()) put_lenenc_str(out, ok.session_state);
  } else if (!ok.info.empty()) {
    put_lenenc_str(out, ok.info);  // as servers write it (see parse_ok)
  }
}

bool parse_err(Bytes payload, Err& out) {
  Reader r(payload);
  if (r.u8() != 0xFF) return false;
  out.code = r.u16();
  if (!r.ok()) return false;
  if (r.remaining() >= 6 && payload[3] == '#') {
    r.skip(1);
    out.sqlstate = std::string(r.str(5));
  }
  out.message = std::string(r.rest());
  return r.ok();
}

void build_err(std::string& out, std::uint16_t code, std::string_view sqlstate, std::string_view message) {
  put_u8(out, 0xFF);
  put_u16(out, code);
  out.push_back('#');
  std::string st(sqlstate.substr(0, 5));
  st.resize(5, '0');
  out.append(st);
  out.append(message);
}

std::uint16_t eof_status(Bytes payload, bool deprecate_eof, bool session_track) {
  if (deprecate_eof) {
    Ok ok;
    return parse_ok(payload, session_track, ok) ? ok.status : 0;
  }
  Reader r(payload);
  r.u8();
  r.u16();
  std::uint16_t st = r.u16();
  return r.ok() ? st : 0;
}

void build_eof(std::string& out, std::uint16_t warnings, std::uint16_t st) {
  put_u8(out, 0xFE);
  put_u16(out, warnings);
  put_u16(out, st);
}

bool parse_session_state(std::string_view state, SessionChanges& out) {
  Reader r(state);
  while (r.ok() && !r.at_end()) {
    std::uint8_t type = r.u8();
    Reader d(r.lenenc_str());
    if (!r.ok()) return false;
    switch (type) {
      case track::SYSTEM_VARIABLES: {
        auto name = d.lenenc_str();
        auto value = d.lenenc_str();
        if (!d.ok()) return false;
        out.variables.emplace_back(name, value);
        break;
      }
      case track::SCHEMA: {
        auto name = d.lenenc_str();
        if (!d.ok()) return false;
        out.schema = std::string(name);
        break;
      }
      case track::STATE_CHANGE: {
        auto v = d.lenenc_str();
        if (!d.ok()) return false;
        if (v == "1") out.state_changed = true;
        break;
      }
      default:
        break;  // GTIDs, transaction characteristics/state: not needed
    }
  }
  return r.ok();
}

// ---- Prepared statements ----

bool parse_prepare_ok(Bytes payload, PrepareOk& out) {
  Reader r(payload);
  if (r.u8() != 0x00) return false;
  out.statement_id = r.u32();
  out.columns = r.u16();
  out.params = r.u16();
  r.u8();
  out.warnings = r.remaining() >= 2 ? r.u16() : 0;
  return r.ok();
}

bool parse_execute(Bytes payload, std::uint16_t num_params, ExecuteView& v) {
  Reader r(payload);
  if (r.u8() != com::STMT_EXECUTE) return false;
  v.statement_id = r.u32();
  v.flags = r.u8();
  r.u32();  // iteration count, always 1
  if (!r.ok()) return false;
  v.new_params_bound = false;
  if (num_params == 0) {
    v.values_offset = r.pos();
    return true;
  }
  v.null_bitmap_offset = r.pos();
  r.skip((num_params + 7) / 8);
  v.bound_flag_offset = r.pos();
  v.new_params_bound = r.u8() == 1;
  if (!r.ok()) return false;
  v.types_offset = r.pos();
  if (v.new_params_bound) {
    r.skip(2u * num_params);
    if (!r.ok()) return false;
  }
  v.values_offset = r.pos();
  return true;
}

void execute_with_types(std::string& out, Bytes payload, const ExecuteView& v, std::string_view types) {
  out.clear();
  out.reserve(payload.size() + types.size());
  auto sv = as_sv(payload);
  out.append(sv.substr(0, v.bound_flag_offset));
  out.push_back('\x01');
  out.append(types);
  out.append(sv.substr(v.bound_flag_offset + 1));
}

void patch_statement_id(std::uint8_t* payload, std::uint32_t id) {
  for (int i = 0; i < 4; ++i) payload[1 + i] = static_cast<std::uint8_t>((id >> (8 * i)) & 0xFF);
}

void build_command(std::string& out, std::uint8_t command, std::string_view arg) {
  put_u8(out, command);
  out.append(arg);
}

// ---- Scrambles ----

namespace {
std::string xor_bytes(std::string_view a, std::string_view b) {
  std::string out(a.size(), '\0');
  for (std::size_t i = 0; i < a.size(); ++i) out[i] = static_cast<char>(a[i] ^ b[i % b.size()]);
  return out;
}
}  // namespace

std::string native_scramble(std::string_view password, std::string_view nonce) {
  if (password.empty()) return {};
  auto stage1 = crypto::sha1_raw(password);
  auto stage2 = crypto::sha1_raw(stage1);
  auto mix = crypto::sha1_raw(std::string(nonce.substr(0, 20)) + stage2);
  return xor_bytes(stage1, mix);
}

std::string native_stored_hash(std::string_view password) {
  return "*" + crypto::hex_upper(crypto::sha1_raw(crypto::sha1_raw(password)));
}

std::optional<std::string> native_verify(std::string_view scramble, std::string_view nonce,
                                         std::string_view stage2) {
  if (scramble.size() != 20 || stage2.size() != 20) return std::nullopt;
  auto mix = crypto::sha1_raw(std::string(nonce.substr(0, 20)) + std::string(stage2));
  auto stage1 = xor_bytes(scramble, mix);
  if (!crypto::equal_constant_time(crypto::sha1_raw(stage1), stage2)) return std::nullopt;
  return stage1;
}

std::string sha2_scramble(std::string_view password, std::string_view nonce) {
  if (password.empty()) return {};
  auto d1 = crypto::sha256_raw(password);
  auto d2 = crypto::sha256_raw(d1);
  auto d3 = crypto::sha256_raw(d2 + std::string(nonce.substr(0, 20)));
  return xor_bytes(d1, d3);
}

bool sha2_verify(std::string_view scramble, std::string_view nonce, std::string_view password) {
  auto expect = sha2_scramble(password, nonce);
  return crypto::equal_constant_time(expect, scramble);
}

std::string xor_with_nonce(std::string_view password_nul, std::string_view nonce) {
  return xor_bytes(password_nul, nonce.substr(0, 20));
}

}  // namespace sluice::my

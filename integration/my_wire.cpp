// Raw MySQL / MariaDB protocol for the differential wire tests (see my_wire.hpp).
#include "my_wire.hpp"

#include <doctest/doctest.h>
#include <openssl/evp.h>
#include <poll.h>
#include <zlib.h>
#include <zstd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "harness.hpp"

namespace sluice::itest::myw {

namespace {

void put_u16(std::string& o, std::uint16_t v) {
  o.push_back(static_cast<char>(v & 0xFF));
  o.push_back(static_cast<char>(v >> 8));
}
void put_u32(std::string& o, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) o.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void put_lenenc(std::string& o, std::uint64_t v) {
  if (v < 251) {
    o.push_back(static_cast<char>(v));
  } else if (v < 65536) {
    o.push_back('\xfc');
    put_u16(o, static_cast<std::uint16_t>(v));
  } else if (v < (1u << 24)) {
    o.push_back('\xfd');
    for (int i = 0; i < 3; ++i) o.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  } else {
    o.push_back('\xfe');
    for (int i = 0; i < 8; ++i) o.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  }
}
std::uint16_t u16_at(const std::string& s, std::size_t at) {
  if (at + 2 > s.size()) return 0;
  return static_cast<std::uint16_t>(std::uint8_t(s[at]) | (std::uint8_t(s[at + 1]) << 8));
}
std::uint32_t u32_at(const std::string& s, std::size_t at) {
  if (at + 4 > s.size()) return 0;
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | std::uint8_t(s[at + i]);
  return v;
}
// A length-encoded integer at `at`; advances `at`.
std::uint64_t lenenc_at(const std::string& s, std::size_t& at) {
  if (at >= s.size()) return 0;
  std::uint8_t h = std::uint8_t(s[at++]);
  int n = h < 251 ? 0 : h == 0xFC ? 2 : h == 0xFD ? 3 : h == 0xFE ? 8 : 0;
  if (n == 0) return h < 251 ? h : 0;
  std::uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | (at + i < s.size() ? std::uint8_t(s[at + i]) : 0);
  at += n;
  return v;
}

std::string sha1(const std::string& in) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(in.data(), in.size(), out, &n, EVP_sha1(), nullptr);
  return std::string(reinterpret_cast<char*>(out), n);
}

void put_u24(std::string& o, std::size_t v) {
  for (int i = 0; i < 3; ++i) o.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

enum class Zip { None, Zlib, Zstd };
Zip zip_of(std::uint32_t caps) {
  if (caps & cap::kCompress) return Zip::Zlib;  // both flags: zlib, as the protocol says
  return (caps & cap::kZstd) ? Zip::Zstd : Zip::None;
}

// `zip`: wrap the packet in one compressed-protocol frame (sequence 0: a new command),
// compressed when 50 bytes or longer, as client libraries do.
void send_packet(int fd, const std::string& payload, std::uint8_t seq, Zip zip = Zip::None) {
  const bool compressed = zip != Zip::None;
  std::string out;
  put_u24(out, payload.size());
  out.push_back(static_cast<char>(seq));
  out += payload;
  if (compressed) {
    std::string frame;
    if (out.size() < 50) {
      put_u24(frame, out.size());
      frame.push_back('\0');
      put_u24(frame, 0);
      frame += out;
    } else {
      std::string z;
      if (zip == Zip::Zstd) {
        z.resize(ZSTD_compressBound(out.size()));
        std::size_t len = ZSTD_compress(z.data(), z.size(), out.data(), out.size(), 5);
        REQUIRE(!ZSTD_isError(len));
        z.resize(len);
      } else {
        uLongf len = compressBound(static_cast<uLong>(out.size()));
        z.resize(len);
        REQUIRE(compress(reinterpret_cast<Bytef*>(z.data()), &len, reinterpret_cast<const Bytef*>(out.data()),
                         static_cast<uLong>(out.size())) == Z_OK);
        z.resize(len);
      }
      put_u24(frame, z.size());
      frame.push_back('\0');
      put_u24(frame, out.size());
      frame += z;
    }
    out = frame;
  }
  ssize_t n = ::send(fd, out.data(), out.size(), MSG_NOSIGNAL);
  REQUIRE_MESSAGE(n == static_cast<ssize_t>(out.size()), "send failed");
}

// Reads physical packets from a socket, joining continued ones for the caller while recording
// each physical packet.
class Reader {
 public:
  // `inflated`: when set, the stream is in compressed frames (`zip`); counts the frames that
  // were compressed (not stored).
  Reader(int fd, Packets& out, int* inflated = nullptr, Zip zip = Zip::Zlib)
      : fd_(fd), out_(out), inflated_(inflated), zip_(zip) {}
  // One logical packet's payload; nullopt at a close (recorded as "#closed").
  std::optional<std::string> next(std::uint8_t* last_seq = nullptr) {
    std::string joined;
    for (;;) {
      while (buf_.size() < 4 || buf_.size() < 4 + len()) {
        if (closed_) return std::nullopt;
        pollfd p{fd_, POLLIN, 0};
        int r = ::poll(&p, 1, 10000);
        REQUIRE_MESSAGE(r > 0, "no answer within 10 s");
        char chunk[65536];
        ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
        if (n <= 0) {
          closed_ = true;
          REQUIRE_MESSAGE(buf_.empty(), "a partial packet was left at the close");
          out_.push_back("#closed");
          return std::nullopt;
        }
        if (inflated_) {
          zbuf_.append(chunk, static_cast<std::size_t>(n));
          unframe();
        } else {
          buf_.append(chunk, static_cast<std::size_t>(n));
        }
      }
      std::size_t l = len();
      out_.push_back(buf_.substr(3, 1 + l));
      if (last_seq) *last_seq = std::uint8_t(buf_[3]);
      joined.append(buf_, 4, l);
      buf_.erase(0, 4 + l);
      if (l < 0xFFFFFF) return joined;
    }
  }
  bool closed() const { return closed_; }
  bool drained() const { return buf_.empty(); }

 private:
  std::size_t len() const {
    return std::size_t(std::uint8_t(buf_[0])) | (std::size_t(std::uint8_t(buf_[1])) << 8) |
           (std::size_t(std::uint8_t(buf_[2])) << 16);
  }
  // Whole compressed frames from zbuf_ into buf_.
  void unframe() {
    while (zbuf_.size() >= 7) {
      std::size_t len = std::size_t(std::uint8_t(zbuf_[0])) | (std::size_t(std::uint8_t(zbuf_[1])) << 8) |
                        (std::size_t(std::uint8_t(zbuf_[2])) << 16);
      std::size_t raw = std::size_t(std::uint8_t(zbuf_[4])) | (std::size_t(std::uint8_t(zbuf_[5])) << 8) |
                        (std::size_t(std::uint8_t(zbuf_[6])) << 16);
      if (zbuf_.size() < 7 + len) return;
      if (raw == 0) {
        buf_.append(zbuf_, 7, len);
      } else {
        std::string plain(raw, '\0');
        if (zip_ == Zip::Zstd) {
          std::size_t got = ZSTD_decompress(plain.data(), raw, zbuf_.data() + 7, len);
          REQUIRE(!ZSTD_isError(got));
          REQUIRE(got == raw);
        } else {
          uLongf got = static_cast<uLongf>(raw);
          REQUIRE(uncompress(reinterpret_cast<Bytef*>(plain.data()), &got,
                             reinterpret_cast<const Bytef*>(zbuf_.data() + 7), static_cast<uLong>(len)) == Z_OK);
          REQUIRE(got == raw);
        }
        buf_ += plain;
        ++*inflated_;
      }
      zbuf_.erase(0, 7 + len);
    }
  }
  int fd_;
  Packets& out_;
  int* inflated_;
  Zip zip_;
  std::string buf_, zbuf_;
  bool closed_ = false;
};

std::uint16_t ok_status(const std::string& p) {
  std::size_t at = 1;
  lenenc_at(p, at);
  lenenc_at(p, at);
  return u16_at(p, at);
}
bool is_end(const std::string& p) { return !p.empty() && std::uint8_t(p[0]) == 0xFE && p.size() < 0xFFFFFF; }
constexpr std::uint16_t kMoreResults = 8, kCursorExists = 64;

// Reads one result (OK / ERR / result set) and any results that follow it.
void read_result(Reader& r, bool deprecate_eof) {
  for (;;) {
    auto p = r.next();
    if (!p || p->empty()) return;
    std::uint8_t h = std::uint8_t((*p)[0]);
    if (h == 0xFF || h == 0xFB) return;
    if (h == 0x00) {
      if (ok_status(*p) & kMoreResults) continue;
      return;
    }
    std::size_t at = 0;
    std::uint64_t columns = lenenc_at(*p, at);
    for (std::uint64_t i = 0; i < columns; ++i)
      if (!r.next()) return;
    if (!deprecate_eof) {
      auto eof = r.next();
      if (!eof) return;
      if (u16_at(*eof, 3) & kCursorExists) return;  // a cursor: rows come by COM_STMT_FETCH
    }
    std::uint16_t status = 0;
    for (;;) {
      auto row = r.next();
      if (!row || row->empty()) return;
      if (std::uint8_t((*row)[0]) == 0xFF) return;
      if (is_end(*row)) {
        status = deprecate_eof ? ok_status(*row) : u16_at(*row, 3);
        break;
      }
    }
    if (!(status & kMoreResults)) return;
  }
}

void read_rows(Reader& r) {
  for (;;) {
    auto row = r.next();
    if (!row || row->empty() || std::uint8_t((*row)[0]) == 0xFF || is_end(*row)) return;
  }
}

void read_prepare(Reader& r, bool deprecate_eof) {
  auto p = r.next();
  if (!p || p->empty() || std::uint8_t((*p)[0]) != 0x00) return;
  std::uint16_t columns = u16_at(*p, 5), params = u16_at(*p, 7);
  for (std::uint16_t n : {params, columns}) {
    if (n == 0) continue;
    for (std::uint16_t i = 0; i < n; ++i)
      if (!r.next()) return;
    if (!deprecate_eof && !r.next()) return;
  }
}

// Answers auth switches with `password` until OK or ERR.
bool read_auth(Reader& r, int fd, const std::string& password) {
  for (;;) {
    std::uint8_t seq = 0;
    auto p = r.next(&seq);
    if (!p || p->empty()) return false;
    std::uint8_t h = std::uint8_t((*p)[0]);
    if (h == 0x00) return true;
    if (h != 0xFE) return false;
    std::size_t nul = p->find('\0', 1);
    std::string plugin = p->substr(1, nul - 1);
    std::string data = nul == std::string::npos ? std::string() : p->substr(nul + 1);
    if (!data.empty() && data.back() == '\0') data.pop_back();
    REQUIRE_MESSAGE(plugin == "mysql_native_password", "auth switch to " << plugin);
    send_packet(fd, native_scramble(password, data.substr(0, 20)), static_cast<std::uint8_t>(seq + 1));
  }
}

}  // namespace

Client::Client(Client&& o) noexcept
    : fd(o.fd), greeting(std::move(o.greeting)), capabilities(o.capabilities),
      mariadb_capabilities(o.mariadb_capabilities), login(std::move(o.login)), ok(o.ok), password(std::move(o.password)),
      inflated_frames(o.inflated_frames) {
  o.fd = -1;
}
Client::~Client() {
  if (fd >= 0) ::close(fd);
}

std::string native_scramble(const std::string& password, const std::string& nonce) {
  if (password.empty()) return "";
  std::string stage1 = sha1(password);
  std::string mix = sha1(nonce + sha1(stage1));
  for (std::size_t i = 0; i < stage1.size(); ++i) stage1[i] = static_cast<char>(stage1[i] ^ mix[i]);
  return stage1;
}

Client login(int port, const Login& how) {
  Client c;
  c.password = how.password;
  c.fd = loopback_connect(port);
  REQUIRE_MESSAGE(c.fd >= 0, "cannot connect to port " << port);
  Packets greeting_packets;
  Reader r(c.fd, greeting_packets);
  auto hs = r.next();
  REQUIRE_MESSAGE(hs.has_value(), "no greeting");
  REQUIRE_MESSAGE((!hs->empty() && (*hs)[0] == 10), "not a HandshakeV10");
  Greeting& g = c.greeting;
  std::size_t at = 1;
  std::size_t nul = hs->find('\0', at);
  g.server_version = hs->substr(at, nul - at);
  at = nul + 1;
  g.connection_id = u32_at(*hs, at);
  at += 4;
  g.nonce = hs->substr(at, 8);
  at += 9;
  g.capabilities = u16_at(*hs, at);
  at += 2;
  g.charset = std::uint8_t((*hs)[at++]);
  g.status = u16_at(*hs, at);
  at += 2;
  g.capabilities |= std::uint32_t(u16_at(*hs, at)) << 16;
  at += 2;
  std::size_t data_len = std::uint8_t((*hs)[at++]);
  at += 6;
  if (!(g.capabilities & cap::kClientMysql)) g.mariadb_capabilities = u32_at(*hs, at);
  at += 4;
  std::size_t part2 = std::max<std::size_t>(13, data_len > 8 ? data_len - 8 : 0);
  g.nonce += hs->substr(at, part2 - 1);
  at += part2;
  nul = hs->find('\0', at);
  g.plugin = hs->substr(at, nul == std::string::npos ? std::string::npos : nul - at);

  std::uint32_t caps = how.capabilities & (g.capabilities | cap::kClientMysql);
  std::uint32_t ext = 0;
  if (!(g.capabilities & cap::kClientMysql) && how.mariadb_capabilities) {
    caps &= ~cap::kClientMysql;
    ext = how.mariadb_capabilities & g.mariadb_capabilities;
  }
  if (how.database.empty()) caps &= ~cap::kConnectWithDb;
  c.capabilities = caps;
  c.mariadb_capabilities = ext;
  std::string resp;
  put_u32(resp, caps);
  put_u32(resp, 1u << 30);
  resp.push_back('\x2d');  // utf8mb4_general_ci
  resp.append(19, '\0');
  put_u32(resp, ext);
  resp += how.user + std::string(1, '\0');
  std::string auth = how.plugin == "mysql_native_password" ? native_scramble(how.password, g.nonce) : std::string();
  put_lenenc(resp, auth.size());
  resp += auth;
  if (caps & cap::kConnectWithDb) resp += how.database + std::string(1, '\0');
  resp += how.plugin + std::string(1, '\0');
  if (caps & cap::kConnectAttrs) {
    std::string attrs;
    for (const char* kv : {"_client_name", "wire_test", "program_name", "my_wire_diff"}) {
      put_lenenc(attrs, std::strlen(kv));
      attrs += kv;
    }
    put_lenenc(resp, attrs.size());
    resp += attrs;
  }
  if (zip_of(caps) == Zip::Zstd) resp.push_back('\x05');  // zstd_compression_level
  send_packet(c.fd, resp, 1);
  Reader lr(c.fd, c.login);
  c.ok = read_auth(lr, c.fd, how.password);
  return c;
}

std::string query(const std::string& sql) { return "\x03" + sql; }
std::string prepare(const std::string& sql) { return "\x16" + sql; }

Param int_param(std::int64_t v) {
  Param p;
  p.type = 0x08;  // LONGLONG
  for (int i = 0; i < 8; ++i) p.value.push_back(static_cast<char>((static_cast<std::uint64_t>(v) >> (8 * i)) & 0xFF));
  return p;
}
Param str_param(const std::string& v) {
  Param p;
  p.type = 0xFD;
  put_lenenc(p.value, v.size());
  p.value += v;
  return p;
}
Param double_param(double v) {
  Param p;
  p.type = 0x05;  // DOUBLE
  char b[8];
  std::memcpy(b, &v, 8);
  p.value.assign(b, 8);
  return p;
}
Param null_param() {
  Param p;
  p.type = 0x06;  // NULL
  p.null = true;
  return p;
}

std::string execute(std::uint32_t stmt, const std::vector<Param>& params, std::uint8_t flags, bool send_types) {
  std::string o = "\x17";
  put_u32(o, stmt);
  o.push_back(static_cast<char>(flags));
  put_u32(o, 1);
  if (params.empty()) return o;
  std::string bitmap((params.size() + 7) / 8, '\0');
  for (std::size_t i = 0; i < params.size(); ++i)
    if (params[i].null) bitmap[i / 8] = static_cast<char>(bitmap[i / 8] | (1 << (i % 8)));
  o += bitmap;
  o.push_back(send_types ? '\x01' : '\x00');
  if (send_types)
    for (auto& p : params) put_u16(o, p.type);
  for (auto& p : params)
    if (!p.null) o += p.value;
  return o;
}
std::string fetch(std::uint32_t stmt, std::uint32_t rows) {
  std::string o = "\x1c";
  put_u32(o, stmt);
  put_u32(o, rows);
  return o;
}
std::string close_stmt(std::uint32_t stmt) {
  std::string o = "\x19";
  put_u32(o, stmt);
  return o;
}
std::string reset_stmt(std::uint32_t stmt) {
  std::string o = "\x1a";
  put_u32(o, stmt);
  return o;
}
std::string long_data(std::uint32_t stmt, std::uint16_t param, const std::string& data) {
  std::string o = "\x18";
  put_u32(o, stmt);
  put_u16(o, param);
  return o + data;
}
std::string simple(std::uint8_t command, const std::string& arg) { return std::string(1, static_cast<char>(command)) + arg; }

std::string change_user(const Client& c, const std::string& user, const std::string& password, const std::string& db) {
  std::string o = "\x11" + user + std::string(1, '\0');
  std::string auth = native_scramble(password, c.greeting.nonce);
  o.push_back(static_cast<char>(auth.size()));
  o += auth;
  o += db + std::string(1, '\0');
  put_u16(o, 45);
  o += "mysql_native_password" + std::string(1, '\0');
  if (c.capabilities & cap::kConnectAttrs) {
    std::string attrs;
    for (const char* kv : {"_client_name", "wire_test"}) {
      put_lenenc(attrs, std::strlen(kv));
      attrs += kv;
    }
    put_lenenc(o, attrs.size());
    o += attrs;
  }
  return o;
}

Packets run_steps(Client& c, const std::vector<Step>& steps, const std::function<void(const std::string&)>& side) {
  Packets out;
  const Zip zip = zip_of(c.capabilities);
  Reader r(c.fd, out, zip != Zip::None ? &c.inflated_frames : nullptr, zip);
  bool deprecate_eof = (c.capabilities & cap::kDeprecateEof) != 0;
  std::vector<std::uint32_t> ids;  // statement ids the server gave, in order
  for (const auto& st : steps) {
    if (!st.side_sql.empty()) side(st.side_sql);
    if (r.closed()) break;
    std::string payload = st.payload;
    std::uint8_t command = payload.empty() ? 0 : std::uint8_t(payload[0]);
    if (payload.size() >= 5 && (command == 0x17 || command == 0x18 || command == 0x19 || command == 0x1a || command == 0x1c)) {
      std::uint32_t ordinal = u32_at(payload, 1);
      if (ordinal >= 1 && ordinal <= ids.size()) {
        std::string id;
        put_u32(id, ids[ordinal - 1]);
        payload.replace(1, 4, id);
      }
    }
    std::size_t first = out.size();
    if (!payload.empty()) send_packet(c.fd, payload, 0, zip);
    switch (st.expect) {
      case Expect::Result: read_result(r, deprecate_eof); break;
      case Expect::Rows:
      case Expect::Fields: read_rows(r); break;
      case Expect::Prepare:
        read_prepare(r, deprecate_eof);
        // Statement ids are the server's to choose (MariaDB's count across connections): the
        // steps name statements by their order, and the answers are compared by that order.
        if (first < out.size() && out[first].size() >= 6 && out[first][1] == '\0') {
          ids.push_back(u32_at(out[first], 2));
          std::string ordinal;
          put_u32(ordinal, static_cast<std::uint32_t>(ids.size()));
          out[first].replace(2, 4, ordinal);
        }
        break;
      case Expect::Auth: read_auth(r, c.fd, st.password); break;
      case Expect::None: break;
      case Expect::Closed:
        while (r.next()) {
        }
        break;
    }
    // Error messages that name a statement name the id the client used.
    for (std::size_t i = first; i < out.size(); ++i) {
      if (out[i].size() < 2 || std::uint8_t(out[i][1]) != 0xFF) continue;
      for (std::size_t k = 0; k < ids.size(); ++k) {
        std::string server = "(" + std::to_string(ids[k]) + ")", mine = "(" + std::to_string(k + 1) + ")";
        if (auto at = out[i].find(server); at != std::string::npos) out[i].replace(at, server.size(), mine);
      }
    }
  }
  CHECK_MESSAGE(r.drained(), "a partial packet was left over");
  return out;
}

void normalize(Packets& p) {
  for (auto& s : p) {
    if (s.size() < 2 || std::uint8_t(s[1]) != 0xFE || s.size() < 12) continue;
    // An auth switch: plugin name, NUL, nonce. (EOF packets are shorter than 12 bytes.)
    std::size_t nul = s.find('\0', 2);
    if (nul != std::string::npos && s.substr(2, nul - 2).find_first_not_of(
                                        "abcdefghijklmnopqrstuvwxyz_0123456789") == std::string::npos)
      std::fill(s.begin() + static_cast<std::ptrdiff_t>(nul + 1), s.end(), '\0');
  }
}

std::string describe_difference(const Packets& got, const Packets& want) {
  auto show = [](const Packets& m, std::size_t i) {
    if (i >= m.size()) return std::string("(nothing)");
    std::string printable;
    for (unsigned char c : m[i].substr(0, 160)) {
      if (c >= 32 && c < 127) {
        printable += static_cast<char>(c);
      } else {
        char hex[8];
        std::snprintf(hex, sizeof hex, "\\x%02x", c);
        printable += hex;
      }
    }
    return std::to_string(m[i].size()) + " bytes: " + printable;
  };
  for (std::size_t i = 0; i < std::max(got.size(), want.size()); ++i) {
    if (i < got.size() && i < want.size() && got[i] == want[i]) continue;
    return "packet " + std::to_string(i) + ": through Sluice " + show(got, i) + "\n  directly " + show(want, i);
  }
  return "";
}

std::string describe_greeting(const Greeting& g) {
  char caps[64];
  std::snprintf(caps, sizeof caps, "caps 0x%08x mariadb 0x%08x", g.capabilities, g.mariadb_capabilities);
  return "version '" + g.server_version + "' " + caps + " charset " + std::to_string(g.charset) + " status " +
         std::to_string(g.status) + " plugin '" + g.plugin + "'";
}

}  // namespace sluice::itest::myw

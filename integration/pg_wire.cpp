// Raw PostgreSQL protocol for the differential wire tests (see pg_wire.hpp).
#include "pg_wire.hpp"

#include <doctest/doctest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

namespace sluice::itest::pgw {

void put_u32(std::string& out, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<char>((v >> s) & 0xFF));
}
void put_u16(std::string& out, std::uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xFF));
}
std::string msg(char type, const std::string& body) {
  std::string out(1, type);
  put_u32(out, static_cast<std::uint32_t>(body.size() + 4));
  return out + body;
}
std::string cstr(const std::string& s) { return s + std::string(1, '\0'); }
std::string query(const std::string& sql) { return msg('Q', cstr(sql)); }
std::string parse(const std::string& sql, const std::string& name, std::vector<std::uint32_t> types) {
  std::string body = cstr(name) + cstr(sql);
  put_u16(body, static_cast<std::uint16_t>(types.size()));
  for (auto t : types) put_u32(body, t);
  return msg('P', body);
}
std::string bind(const std::string& portal, const std::string& stmt, const std::vector<std::string>& params,
                 std::vector<std::uint16_t> result_formats) {
  std::string body = cstr(portal) + cstr(stmt);
  put_u16(body, 0);  // parameters in text
  put_u16(body, static_cast<std::uint16_t>(params.size()));
  for (auto& p : params) {
    put_u32(body, static_cast<std::uint32_t>(p.size()));
    body += p;
  }
  put_u16(body, static_cast<std::uint16_t>(result_formats.size()));
  for (auto f : result_formats) put_u16(body, f);
  return msg('B', body);
}
std::string describe_portal(const std::string& portal) { return msg('D', "P" + cstr(portal)); }
std::string describe_statement(const std::string& stmt) { return msg('D', "S" + cstr(stmt)); }
std::string execute(const std::string& portal, std::uint32_t max_rows) {
  std::string body = cstr(portal);
  put_u32(body, max_rows);
  return msg('E', body);
}
std::string close_portal(const std::string& portal) { return msg('C', "P" + cstr(portal)); }
std::string close_statement(const std::string& stmt) { return msg('C', "S" + cstr(stmt)); }
std::string sync_msg() { return msg('S', ""); }
std::string flush() { return msg('H', ""); }
std::string terminate() { return msg('X', ""); }
std::string copy_data(const std::string& data) { return msg('d', data); }
std::string copy_done() { return msg('c', ""); }
std::string copy_fail(const std::string& why) { return msg('f', cstr(why)); }

namespace {

// Moves every whole message from `buf` to `out`; returns how many of type `type` came.
int take_messages(std::string& buf, Messages& out, char type) {
  int seen = 0;
  while (buf.size() >= 5) {
    std::uint32_t len = (std::uint8_t(buf[1]) << 24) | (std::uint8_t(buf[2]) << 16) | (std::uint8_t(buf[3]) << 8) |
                        std::uint8_t(buf[4]);
    if (buf.size() < len + 1) break;
    out.emplace_back(buf[0], buf.substr(5, len - 4));
    if (buf[0] == type) ++seen;
    buf.erase(0, len + 1);
  }
  return seen;
}

}  // namespace

Messages run_steps(int fd, const std::vector<Step>& steps, const std::function<void(const std::string&)>& side) {
  Messages out;
  std::string buf;
  bool closed = false;
  for (const auto& st : steps) {
    if (st.sleep_ms) std::this_thread::sleep_for(std::chrono::milliseconds(st.sleep_ms));
    if (!st.side_sql.empty()) side(st.side_sql);
    if (!st.send.empty() && !closed) {
      ssize_t n = ::send(fd, st.send.data(), st.send.size(), MSG_NOSIGNAL);
      REQUIRE_MESSAGE(n == static_cast<ssize_t>(st.send.size()), "send failed");
    }
    int want = st.until.kind == Until::Type ? st.until.count : 0;
    for (;;) {
      if (st.until.kind == Until::Type && want <= 0) break;
      if (closed) {
        REQUIRE_MESSAGE(st.until.kind != Until::Type, "connection closed while waiting for '" << st.until.type << "'");
        break;
      }
      pollfd p{fd, POLLIN, 0};
      int timeout = st.until.kind == Until::Quiet ? st.until.quiet_ms : 10000;
      int r = ::poll(&p, 1, timeout);
      if (r == 0) {
        REQUIRE_MESSAGE(st.until.kind == Until::Quiet,
                        "no answer within 10 s (waiting for " << (st.until.kind == Until::Closed ? std::string("close")
                                                                                                 : std::string(1, st.until.type))
                                                              << ")");
        break;
      }
      char chunk[65536];
      ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
      if (n <= 0) {
        closed = true;
        out.emplace_back('#', "closed");
        continue;
      }
      buf.append(chunk, static_cast<std::size_t>(n));
      want -= take_messages(buf, out, st.until.type);
    }
  }
  CHECK_MESSAGE(buf.empty(), "a partial message was left over");
  return out;
}

void normalize(Messages& m) {
  for (auto& [type, body] : m) {
    if (type == 'A' && body.size() >= 4) body.replace(0, 4, std::string(4, '\0'));
    if (type == 'E' || type == 'N') {
      // The server's source file, line and routine (F, L, R): absent where Sluice answers
      // for the server (e.g. 42P05 of a statement name the client already used).
      std::string kept;
      std::size_t pos = 0;
      while (pos < body.size() && body[pos] != '\0') {
        std::size_t end = body.find('\0', pos);
        if (end == std::string::npos) break;
        char field = body[pos];
        if (field != 'F' && field != 'L' && field != 'R') kept.append(body, pos, end + 1 - pos);
        pos = end + 1;
      }
      body = kept + std::string(1, '\0');
    }
  }
}

std::string describe_difference(const Messages& got, const Messages& want) {
  auto show = [](const Messages& m, std::size_t i) {
    if (i >= m.size()) return std::string("(nothing)");
    std::string printable;
    for (char c : m[i].second.substr(0, 120)) printable += (c >= 32 && c < 127) ? c : '.';
    return std::string("'") + m[i].first + "' " + std::to_string(m[i].second.size()) + " bytes: " + printable;
  };
  for (std::size_t i = 0; i < std::max(got.size(), want.size()); ++i) {
    if (i < got.size() && i < want.size() && got[i] == want[i]) continue;
    return "message " + std::to_string(i) + ": through Sluice " + show(got, i) + "\n  directly " + show(want, i);
  }
  return "";
}

}  // namespace sluice::itest::pgw

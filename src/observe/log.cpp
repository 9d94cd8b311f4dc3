// stderr sink: one line per event, text or JSON.
#include "src/observe/log.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>

namespace sluice::log {

std::atomic<Level> g_level{Level::Info};
std::atomic<Format> g_format{Format::Text};

void set_level(std::string_view name) {
  if (name == "debug") g_level = Level::Debug;
  else if (name == "warn") g_level = Level::Warn;
  else if (name == "error") g_level = Level::Error;
  else g_level = Level::Info;
}

void set_format(std::string_view name) { g_format = name == "json" ? Format::Json : Format::Text; }

namespace {

const char* const kNames[] = {"DEBUG", "INFO", "WARN", "ERROR"};
const char* const kJsonNames[] = {"debug", "info", "warn", "error"};

// A JSON string: quotes, backslashes and control characters escaped; bytes that are not valid
// UTF-8 become U+FFFD, so that every line parses whatever a client sent.
void quote(std::string& out, std::string_view s) {
  out += '"';
  for (std::size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
      ++i;
    } else if (c < 0x20) {
      static const char* hex = "0123456789abcdef";
      switch (c) {
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        default:
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 15];
      }
      ++i;
    } else if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
    } else {
      std::size_t len = c >= 0xF0 && c < 0xF5 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 0;
      bool valid = len > 0 && i + len <= s.size();
      for (std::size_t k = 1; valid && k < len; ++k) valid = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
      if (valid && len == 3) {
        auto c1 = static_cast<unsigned char>(s[i + 1]);
        valid = !(c == 0xE0 && c1 < 0xA0) && !(c == 0xED && c1 >= 0xA0);  // overlong, surrogates
      }
      if (valid && len == 4) {
        auto c1 = static_cast<unsigned char>(s[i + 1]);
        valid = !(c == 0xF0 && c1 < 0x90) && !(c == 0xF4 && c1 >= 0x90);
      }
      if (valid) {
        out.append(s.substr(i, len));
        i += len;
      } else {
        out += "\xEF\xBF\xBD";
        ++i;
      }
    }
  }
  out += '"';
}

void field(std::string& out, std::string_view key, std::string_view value) {
  if (value.empty()) return;
  out += ",\"";
  out += key;
  out += "\":";
  quote(out, value);
}

}  // namespace

std::string json_line(std::string_view time, Level level, std::string_view event, const Fields& f,
                      std::string_view message) {
  std::string out = "{\"time\":";
  quote(out, time);
  out += ",\"level\":\"";
  out += kJsonNames[static_cast<int>(level)];
  out += "\",\"event\":";
  quote(out, event);
  if (f.client_id) out += fmt::format(",\"client_id\":{}", f.client_id);
  field(out, "address", f.address);
  if (f.port) out += fmt::format(",\"port\":{}", f.port);
  field(out, "user", f.user);
  field(out, "database", f.database);
  field(out, "reason", f.reason);
  field(out, "fingerprint", f.fingerprint);
  field(out, "statement", f.statement);
  if (f.duration_ms >= 0) out += fmt::format(",\"duration_ms\":{:.3f}", f.duration_ms);
  if (f.rows >= 0) out += fmt::format(",\"rows\":{}", f.rows);
  out += ",\"message\":";
  quote(out, message);
  out += '}';
  return out;
}

void write_event(Level level, std::string_view event, const Fields& fields, std::string_view message) {
  auto now = std::chrono::system_clock::now();
  auto t = std::chrono::system_clock::to_time_t(now);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char ts[32];
  std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
  auto time = fmt::format("{}.{:03d}Z", ts, static_cast<int>(ms));
  std::string line;
  if (g_format.load(std::memory_order_relaxed) == Format::Json) {
    line = json_line(time, level, event, fields, message);
    line += '\n';
  } else {
    line = fmt::format("{} {} {}\n", time, kNames[static_cast<int>(level)], message);
  }
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace sluice::log

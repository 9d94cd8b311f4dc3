// RESP2 codec (see header).
#include "protocols/common/resp.hpp"

#include <charconv>

namespace sluice::resp {

void encode(std::string& out, std::span<const std::string_view> args) {
  out += '*';
  out += std::to_string(args.size());
  out += "\r\n";
  for (auto a : args) {
    out += '$';
    out += std::to_string(a.size());
    out += "\r\n";
    out.append(a);
    out += "\r\n";
  }
}

namespace {

struct Parser {
  std::string_view in;
  std::size_t pos = 0;
  const Limits& limits;
  std::string& error;

  // The line from pos to its CRLF (not included); NeedMore when no CRLF yet.
  Decode line(std::string_view& out) {
    auto end = in.find("\r\n", pos);
    if (end == std::string_view::npos) {
      if (in.size() - pos > limits.max_line) return fail("a line longer than " + std::to_string(limits.max_line));
      return Decode::NeedMore;
    }
    if (end - pos > limits.max_line) return fail("a line longer than " + std::to_string(limits.max_line));
    out = in.substr(pos, end - pos);
    pos = end + 2;
    return Decode::Ok;
  }
  Decode fail(std::string why) {
    error = std::move(why);
    return Decode::Malformed;
  }
  static bool number(std::string_view s, std::int64_t& v) {
    if (s.empty()) return false;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    return ec == std::errc() && p == s.data() + s.size();
  }

  Decode reply(Reply& out, int depth) {
    if (pos >= in.size()) return Decode::NeedMore;
    char type = in[pos++];
    std::string_view l;
    if (auto d = line(l); d != Decode::Ok) return d;
    switch (type) {
      case '+':
        out.kind = Reply::Kind::Simple;
        out.text = std::string(l);
        return Decode::Ok;
      case '-':
        out.kind = Reply::Kind::Error;
        out.text = std::string(l);
        return Decode::Ok;
      case ':':
        out.kind = Reply::Kind::Integer;
        if (!number(l, out.integer)) return fail("a malformed integer reply");
        return Decode::Ok;
      case '$': {
        std::int64_t n = 0;
        if (!number(l, n) || n < -1) return fail("a malformed bulk length");
        if (n == -1) {
          out.kind = Reply::Kind::Nil;
          return Decode::Ok;
        }
        if (static_cast<std::uint64_t>(n) > limits.max_bulk)
          return fail("a bulk string of " + std::to_string(n) + " bytes (at most " + std::to_string(limits.max_bulk) +
                      ")");
        auto len = static_cast<std::size_t>(n);
        if (in.size() - pos < len + 2) return Decode::NeedMore;
        if (in.substr(pos + len, 2) != "\r\n") return fail("a bulk string without its CRLF");
        out.kind = Reply::Kind::Bulk;
        out.text = std::string(in.substr(pos, len));
        pos += len + 2;
        return Decode::Ok;
      }
      case '*': {
        std::int64_t n = 0;
        if (!number(l, n) || n < -1) return fail("a malformed array length");
        if (n == -1) {
          out.kind = Reply::Kind::Nil;
          return Decode::Ok;
        }
        if (static_cast<std::uint64_t>(n) > limits.max_items)
          return fail("an array of " + std::to_string(n) + " items");
        if (depth >= limits.max_depth) return fail("arrays nested too deep");
        out.kind = Reply::Kind::Array;
        out.items.assign(static_cast<std::size_t>(n), Reply{});
        for (auto& item : out.items)
          if (auto d = reply(item, depth + 1); d != Decode::Ok) return d;
        return Decode::Ok;
      }
      default:
        return fail("an unknown reply type");
    }
  }
};

}  // namespace

Decode decode(std::string_view in, Reply& out, std::size_t& used, std::string& error, const Limits& limits) {
  Parser p{in, 0, limits, error};
  out = Reply{};
  auto d = p.reply(out, 0);
  if (d == Decode::Ok) used = p.pos;
  return d;
}

}  // namespace sluice::resp

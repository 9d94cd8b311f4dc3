// One SQL lexer for both dialects. It knows where strings, quoted identifiers and comments begin
// and end (the only thing a proxy must never get wrong), and hands out words, numbers, parameters
// and punctuation. PostgreSQL: '' strings (E'' with backslash escapes, U&'', B'', X''), "" and
// U&"" identifiers, $tag$ dollar quotes, $1 parameters, -- and nested /* */ comments. MySQL:
// '' and "" strings with backslash escapes, `` identifiers, #, "-- " and /* */ comments, with
// the body of executable comments /*! ... */ read as code.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::sql {

enum class Dialect { Postgres, Mysql };

// ASCII case folding (SQL keywords and identifiers as the servers fold them), for every user of
// the lexer's words.
inline char lower_ascii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c | 0x20) : c; }
std::string lower_ascii(std::string_view s);
// `n` bytes of `s` folded into `d` (which may be `s`): eight at a time where there are eight,
// the letters among them found bit-wise (a byte with the high bit set is no ASCII letter).
inline void lower_ascii_into(char* d, const char* s, std::size_t n) {
  constexpr std::uint64_t kOnes = 0x0101010101010101ull, kHigh = 0x8080808080808080ull;
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t v;
    std::memcpy(&v, s + i, 8);
    const std::uint64_t low7 = v & ~kHigh;
    const std::uint64_t upper = (low7 + (0x80 - 'A') * kOnes) & ~(low7 + (0x80 - 'Z' - 1) * kOnes) & ~v & kHigh;
    v |= upper >> 2;  // 0x80 >> 2 = 0x20: 'A'..'Z' -> 'a'..'z'
    std::memcpy(d + i, &v, 8);
  }
  for (; i < n; ++i) d[i] = lower_ascii(s[i]);
}
// The same, appended to `out` (no string of its own).
inline void append_lower_ascii(std::string& out, std::string_view s) {
  const std::size_t at = out.size();
  out.append(s);
  char* d = out.data() + at;  // (out[i] in the loop would reload the string's pointer and size)
  lower_ascii_into(d, d, s.size());
}
// A word folded into a buffer of its own, for comparing it with keywords and names without an
// allocation. A word longer than the buffer is cut to it: view() then equals no shorter name.
class FoldedWord {
 public:
  explicit FoldedWord(std::string_view s) : n_(s.size() < sizeof buf_ ? s.size() : sizeof buf_) {
    lower_ascii_into(buf_, s.data(), n_);
  }
  std::string_view view() const { return {buf_, n_}; }

 private:
  std::size_t n_;
  char buf_[64];
};

struct Token {
  enum Kind { Word, QuotedIdent, String, Number, Param, Symbol, End };
  Kind kind = End;
  std::string_view text;  // as written (for Word: original case)
  std::size_t pos = 0;
  // Case-insensitive comparison for words (ASCII keywords, given in lower case). Inline: the
  // table and policy scans ask it of every word, and most answers are a length that differs.
  bool is(std::string_view keyword) const {
    if (kind != Word || text.size() != keyword.size()) return false;
    for (std::size_t i = 0; i < text.size(); ++i)
      if (lower_ascii(text[i]) != lower_ascii(keyword[i])) return false;
    return true;
  }
  bool sym(char c) const { return kind == Symbol && text.size() == 1 && text[0] == c; }
};

class Lexer {
 public:
  Lexer(std::string_view text, Dialect d) : s_(text), d_(d) {}
  Token next();
  // Comments seen before the first token (for routing hints), as written, without delimiters.
  std::string_view leading_comment() const { return leading_comment_; }
  bool unterminated() const { return unterminated_; }  // a quote or comment ran off the end

 private:
  void skip_space_and_comments();
  std::size_t quoted_end(std::size_t i, char q, bool backslash) const;
  std::string_view s_;
  Dialect d_;
  std::size_t i_ = 0;
  bool started_ = false;
  int exec_comment_depth_ = 0;  // inside MySQL /*! ... */
  std::string_view leading_comment_;
  bool unterminated_ = false;
};

// A text lexed once, for every analysis of it (classify, inspect_mysql, normalize, tables, the
// cache policy): one command's text is read by the lexer once, however many look at it.
struct Lexed {
  std::string_view text;
  Dialect dialect = Dialect::Postgres;
  std::vector<Token> tokens;  // every token, ';' included
  std::string_view leading_comment;
  bool unterminated = false;
};
// Lexes `text` into `out`, reusing its storage.
void lex_into(Lexed& out, std::string_view text, Dialect d);
inline Lexed lex(std::string_view text, Dialect d) {
  Lexed out;
  lex_into(out, text, d);
  return out;
}

}  // namespace sluice::sql

// SQL lexer (see header).
#include "src/sql/lexer.hpp"

#include <cctype>

namespace sluice::sql {

std::string lower_ascii(std::string_view s) {
  std::string o;
  append_lower_ascii(o, s);
  return o;
}

namespace {
// ASCII classes, inline (the <cctype> ones go through the locale on every call).
inline bool is_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
inline bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
inline bool is_alpha(unsigned char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
inline bool is_alnum(unsigned char c) { return is_alpha(c) || is_digit(c); }
bool ident_start(unsigned char c) { return is_alpha(c) || c == '_' || c >= 0x80; }
bool ident_char(unsigned char c, Dialect d) {
  return is_alnum(c) || c == '_' || c >= 0x80 || c == '$' || (d == Dialect::Mysql && c == '@');
}
}  // namespace

// Index just past the closing quote `q` of a quoted run whose opening quote is at i - 1.
// Doubled quotes stay inside; with `backslash`, \x escapes the next character.
std::size_t Lexer::quoted_end(std::size_t i, char q, bool backslash) const {
  while (i < s_.size()) {
    char c = s_[i];
    if (backslash && c == '\\') {
      i += 2;
    } else if (c == q) {
      if (i + 1 < s_.size() && s_[i + 1] == q) i += 2;
      else return i + 1;
    } else {
      ++i;
    }
  }
  return std::string_view::npos;
}

void Lexer::skip_space_and_comments() {
  for (;;) {
    while (i_ < s_.size() && is_space(static_cast<unsigned char>(s_[i_]))) ++i_;
    if (i_ >= s_.size()) return;
    std::string_view rest = s_.substr(i_);
    bool line_comment = rest.substr(0, 2) == "--" &&
                        (d_ == Dialect::Postgres || rest.size() == 2 || is_space(static_cast<unsigned char>(rest[2])));
    if (line_comment || (d_ == Dialect::Mysql && rest[0] == '#')) {
      std::size_t end = s_.find('\n', i_);
      std::size_t body = i_ + (rest[0] == '#' ? 1 : 2);
      if (!started_ && leading_comment_.empty())
        leading_comment_ = s_.substr(body, (end == std::string_view::npos ? s_.size() : end) - body);
      i_ = end == std::string_view::npos ? s_.size() : end + 1;
      continue;
    }
    if (rest.substr(0, 2) == "/*") {
      if (d_ == Dialect::Mysql && (rest.substr(0, 3) == "/*!" || rest.substr(0, 4) == "/*M!")) {
        i_ += rest[2] == '!' ? 3 : 4;  // executable comment: its body is code
        while (i_ < s_.size() && is_digit(static_cast<unsigned char>(s_[i_]))) ++i_;
        ++exec_comment_depth_;
        continue;
      }
      std::size_t j = i_ + 2;
      int depth = 1;
      while (j < s_.size() && depth > 0) {
        if (s_.substr(j, 2) == "*/") {
          --depth;
          j += 2;
        } else if (d_ == Dialect::Postgres && s_.substr(j, 2) == "/*") {
          ++depth;  // PostgreSQL block comments nest
          j += 2;
        } else {
          ++j;
        }
      }
      if (depth > 0) unterminated_ = true;
      if (!started_ && leading_comment_.empty()) leading_comment_ = s_.substr(i_ + 2, (depth > 0 ? j : j - 2) - i_ - 2);
      i_ = j;
      continue;
    }
    if (exec_comment_depth_ > 0 && rest.substr(0, 2) == "*/") {
      --exec_comment_depth_;
      i_ += 2;
      continue;
    }
    return;
  }
}

Token Lexer::next() {
  skip_space_and_comments();
  Token t;
  t.pos = i_;
  if (i_ >= s_.size()) return t;
  started_ = true;
  const std::size_t start = i_;
  unsigned char c = static_cast<unsigned char>(s_[i_]);
  auto finish = [&](Token::Kind k, std::size_t end) {
    if (end == std::string_view::npos) {
      unterminated_ = true;
      end = s_.size();
    }
    i_ = end;
    t.kind = k;
    t.text = s_.substr(start, end - start);
    return t;
  };
  auto next_is_quote = [&](std::size_t k) { return k < s_.size() && s_[k] == '\''; };

  if (d_ == Dialect::Postgres) {
    // Prefixed strings: E'..' (backslash escapes), B'..', X'..', N'..', U&'..'.
    if ((c == 'e' || c == 'E') && next_is_quote(i_ + 1)) return finish(Token::String, quoted_end(i_ + 2, '\'', true));
    if ((c == 'b' || c == 'B' || c == 'x' || c == 'X' || c == 'n' || c == 'N') && next_is_quote(i_ + 1))
      return finish(Token::String, quoted_end(i_ + 2, '\'', false));
    if ((c == 'u' || c == 'U') && s_.substr(i_ + 1, 1) == "&" && i_ + 2 < s_.size()) {
      if (s_[i_ + 2] == '\'') return finish(Token::String, quoted_end(i_ + 3, '\'', false));
      if (s_[i_ + 2] == '"') return finish(Token::QuotedIdent, quoted_end(i_ + 3, '"', false));
    }
    if (c == '\'') return finish(Token::String, quoted_end(i_ + 1, '\'', false));
    if (c == '"') return finish(Token::QuotedIdent, quoted_end(i_ + 1, '"', false));
    if (c == '$') {
      std::size_t j = i_ + 1;
      if (j < s_.size() && is_digit(static_cast<unsigned char>(s_[j]))) {
        while (j < s_.size() && is_digit(static_cast<unsigned char>(s_[j]))) ++j;
        return finish(Token::Param, j);
      }
      while (j < s_.size() && (is_alnum(static_cast<unsigned char>(s_[j])) || s_[j] == '_' ||
                               static_cast<unsigned char>(s_[j]) >= 0x80))
        ++j;
      if (j < s_.size() && s_[j] == '$') {
        std::string_view tag = s_.substr(i_, j - i_ + 1);
        std::size_t end = s_.find(tag, j + 1);
        return finish(Token::String, end == std::string_view::npos ? end : end + tag.size());
      }
      return finish(Token::Symbol, i_ + 1);
    }
  } else {
    // MySQL: _charset'..' introducers and X'..'/B'..'/N'..' prefixes are words followed by strings.
    if (c == '\'' || c == '"') return finish(Token::String, quoted_end(i_ + 1, static_cast<char>(c), true));
    if (c == '`') return finish(Token::QuotedIdent, quoted_end(i_ + 1, '`', false));
    if (c == '?') return finish(Token::Param, i_ + 1);
  }
  if (is_digit(c) || (c == '.' && i_ + 1 < s_.size() && is_digit(static_cast<unsigned char>(s_[i_ + 1])))) {
    std::size_t j = i_;
    while (j < s_.size() && (is_alnum(static_cast<unsigned char>(s_[j])) || s_[j] == '.' || s_[j] == '_')) {
      if ((s_[j] == 'e' || s_[j] == 'E') && j + 1 < s_.size() && (s_[j + 1] == '+' || s_[j + 1] == '-')) ++j;
      ++j;
    }
    return finish(Token::Number, j);
  }
  if (ident_start(c)) {
    std::size_t j = i_;
    while (j < s_.size() && ident_char(static_cast<unsigned char>(s_[j]), d_)) ++j;
    return finish(Token::Word, j);
  }
  if (c == ':' && d_ == Dialect::Postgres && i_ + 1 < s_.size() && s_[i_ + 1] == ':') return finish(Token::Symbol, i_ + 2);
  return finish(Token::Symbol, i_ + 1);
}

void lex_into(Lexed& out, std::string_view text, Dialect d) {
  Lexer lex(text, d);
  out.text = text;
  out.dialect = d;
  out.tokens.clear();
  for (Token t = lex.next(); t.kind != Token::End; t = lex.next()) out.tokens.push_back(t);
  out.leading_comment = lex.leading_comment();
  out.unterminated = lex.unterminated();
}

}  // namespace sluice::sql

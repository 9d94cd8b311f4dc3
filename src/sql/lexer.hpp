// One SQL lexer for both dialects. It knows where strings, quoted identifiers and comments begin
// and end (the only thing a proxy must never get wrong), and hands out words, numbers, parameters
// and punctuation. PostgreSQL: '' strings (E'' with backslash escapes, U&'', B'', X''), "" and
// U&"" identifiers, $tag$ dollar quotes, $1 parameters, -- and nested /* */ comments. MySQL:
// '' and "" strings with backslash escapes, `` identifiers, #, "-- " and /* */ comments, with
// the body of executable comments /*! ... */ read as code.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::sql {

enum class Dialect { Postgres, Mysql };

// ASCII case folding (SQL keywords and identifiers as the servers fold them), for every user of
// the lexer's words.
std::string lower_ascii(std::string_view s);

struct Token {
  enum Kind { Word, QuotedIdent, String, Number, Param, Symbol, End };
  Kind kind = End;
  std::string_view text;  // as written (for Word: original case)
  std::size_t pos = 0;
  // Case-insensitive comparison for words (ASCII keywords).
  bool is(std::string_view keyword) const;
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

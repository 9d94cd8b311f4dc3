// One statement's analysis, done once for every stage that looks at it: routing, the cache
// lookup, invalidation. The text is copied (storage reused), so the tokens outlive the network
// buffer it came from; asking again for the same text, at another stage or for the client's next
// identical statement, reuses the tokens, the classification and the tables instead of lexing
// again. Everything here is a pure function of (text, dialect, write functions).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "src/sql/classify.hpp"
#include "src/sql/fingerprint.hpp"
#include "src/sql/lexer.hpp"
#include "src/sql/normalize.hpp"

namespace sluice::sql {

class Analysis {
 public:
  // The tokens of `text`, lexed unless it is the text analysed last.
  const Lexed& of(std::string_view text, Dialect dialect);
  const Lexed& lexed() const { return lexed_; }

  // Of the text last given to of(): its class, with the cluster's extra write functions (routing)
  // or without (the cache); kept for the last list asked.
  const Classification& classification(const std::vector<std::string>& write_functions = {});
  // The tables it names (invalidation, rules).
  const TableRefs& tables();
  // Its fingerprint and its statements' verbs (fingerprint.hpp): the firewall, the rules and the
  // query digests ask for them, computed once per text.
  const std::string& fingerprint();
  const std::vector<std::string>& verbs();

  std::uint64_t lexings() const { return lexings_; }  // for tests: how often it really lexed

 private:
  std::string text_;
  Lexed lexed_;
  bool valid_ = false;
  std::optional<Classification> cls_;
  std::vector<std::string> cls_functions_;  // the list cls_ was computed with
  std::optional<TableRefs> tables_;
  std::optional<std::string> fingerprint_;
  std::optional<std::vector<std::string>> verbs_;
  std::uint64_t lexings_ = 0;
};

}  // namespace sluice::sql

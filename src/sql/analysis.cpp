#include "src/sql/analysis.hpp"

namespace sluice::sql {

const Lexed& Analysis::of(std::string_view text, Dialect dialect) {
  if (valid_ && dialect == lexed_.dialect && text == std::string_view(text_)) return lexed_;
  text_.assign(text);
  lex_into(lexed_, text_, dialect);
  valid_ = true;
  cls_.reset();
  tables_.reset();
  fingerprint_.reset();
  verbs_.reset();
  ++lexings_;
  return lexed_;
}

const Classification& Analysis::classification(const std::vector<std::string>& write_functions) {
  if (!cls_ || write_functions != cls_functions_) {
    cls_ = classify(lexed_, write_functions);
    cls_functions_ = write_functions;
  }
  return *cls_;
}

const TableRefs& Analysis::tables() {
  if (!tables_) tables_ = sql::tables(lexed_);
  return *tables_;
}

const std::string& Analysis::fingerprint() {
  if (!fingerprint_) fingerprint_ = sql::fingerprint(lexed_);
  return *fingerprint_;
}

const std::vector<std::string>& Analysis::verbs() {
  if (!verbs_) verbs_ = sql::verbs(lexed_);
  return *verbs_;
}

}  // namespace sluice::sql

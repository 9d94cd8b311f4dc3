// SHOW QUERIES: the query digests ([digests], observe/digests.hpp) as console rows, sorted by any
// numeric column and cut to a limit, and the most costly ones for /metrics; SHOW MIRRORS: what
// the [[rules]] mirrors compared.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "src/admin/show.hpp"
#include "src/observe/digests.hpp"

namespace sluice::admin {

const std::vector<Column>& cols_queries();

struct QueriesOrder {
  std::string column = "total_time";  // a column of cols_queries()
  bool descending = true;
  std::optional<std::size_t> limit;
};
// Whether `column` is one SHOW QUERIES may be ordered by (any numeric one, or a text one).
bool queries_column(const std::string& column);
// `pattern`: SHOW QUERIES LIKE, on the fingerprint.
Rows rows_queries(state::Context& ctx, const QueriesOrder& order, const std::optional<std::string>& pattern);
// SHOW MIRRORS: per mirror cluster and fingerprint, copies sent, matched, mismatched, failed,
// dropped (and the cluster's queue).
const std::vector<Column>& cols_mirrors();
Rows rows_mirrors(state::Context& ctx);
// The `n` digests with the most total time.
std::vector<std::shared_ptr<const observe::Digest>> top_digests(state::Context& ctx, std::size_t n);

}  // namespace sluice::admin

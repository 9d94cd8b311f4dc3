// The admin console's SHOW commands (show.cpp): each one's columns, and its rows from the running
// state. The console (console.cpp) parses the statement, checks permissions and filters rows.
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

#include "src/admin/console.hpp"

namespace sluice::state {
struct Context;
}

namespace sluice::admin {

using Rows = std::vector<std::vector<Cell>>;

struct ShowSpec {
  const char* name;  // "POOLS"
  const std::vector<Column>& (*cols)();
  std::size_t filter_column;  // LIKE applies to this column
};

// SHOW <word>, case-insensitive; null when there is no such SHOW.
const ShowSpec* find_show(std::string_view word);
std::vector<std::vector<Cell>> rows_for(state::Context& ctx, const ShowSpec& s);

}  // namespace sluice::admin

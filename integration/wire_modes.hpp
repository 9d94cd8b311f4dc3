// The pools the differential tests run every scenario through: one per pool mode, all serving
// the server database "app" of one cluster, under the client database names app_session,
// app_transaction and app_statement.
#pragma once

#include <string>

namespace sluice::itest::modes {

enum : unsigned { Session = 1, Transaction = 2, Statement = 4, Pooled = 6, NoStatement = 3, All = 7 };

inline std::string database(unsigned mode) {
  return mode == Session ? "app_session" : mode == Transaction ? "app_transaction" : "app_statement";
}

inline std::string pools(const std::string& cluster) {
  std::string out;
  for (const char* mode : {"session", "transaction", "statement"})
    out += std::string("\n[[pools]]\ndatabase = \"app_") + mode + "\"\nserver_database = \"app\"\ncluster = \"" +
           cluster + "\"\npool_mode = \"" + mode + "\"\npool_size = 4\n";
  return out;
}

}  // namespace sluice::itest::modes

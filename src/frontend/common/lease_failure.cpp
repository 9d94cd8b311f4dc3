// Lease failures, described once for both front ends (see header).
#include "src/frontend/common/lease_failure.hpp"

#include <fmt/format.h>

namespace sluice::frontend {

LeaseFailure describe_lease_failure(const pool::LeaseResult& r, const std::string& pool_name, config::Duration wait) {
  LeaseFailure f;
  if (r.timed_out) {
    f.timed_out = true;
    f.sqlstate = "53300";
    f.message = fmt::format("query_wait_timeout: no server connection available in pool \"{}\" within {} ms", pool_name,
                            wait.count());
    f.hint = "raise pool_size for this pool, or query_wait_timeout";
    return f;
  }
  static const pool::ConnectError kUnknown{};
  const auto& err = r.error ? *r.error : kUnknown;
  f.from_server = err.from_server;
  f.sqlstate = err.fields.code;  // empty: the protocol's own "connection failure" code
  f.message = err.from_server ? std::string(err.fields.message) : fmt::format("sluice: {}", err.fields.message);
  f.hint = err.fields.hint;
  f.mysql_code = err.mysql_code;
  return f;
}

}  // namespace sluice::frontend

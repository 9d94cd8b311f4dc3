// Why a client got no server connection, said the same way on both protocols (each front end
// renders it: PostgreSQL as a FATAL ErrorResponse, MySQL as an ERR packet).
#pragma once

#include <cstdint>
#include <string>

#include "src/config/config.hpp"
#include "src/pool/pool.hpp"

namespace sluice::frontend {

struct LeaseFailure {
  bool timed_out = false;    // query_wait_timeout passed in line
  bool from_server = false;  // the server refused the login: its own words, as they came
  std::string sqlstate;      // the server's, 53300 when timed out, empty: a connection failure (08006 / 08S01)
  std::string message;
  std::string hint;
  std::uint16_t mysql_code = 0;  // the server's errno, when it gave one
};

LeaseFailure describe_lease_failure(const pool::LeaseResult& r, const std::string& pool_name, config::Duration wait);

}  // namespace sluice::frontend

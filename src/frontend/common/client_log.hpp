// The fields a client's log events carry (observe/log.hpp): who, from where, as whom, to what.
#pragma once

#include <string_view>

#include "src/observe/log.hpp"
#include "src/observe/stats.hpp"

namespace sluice::frontend {

inline log::Fields client_fields(const observe::ClientInfo& info, std::string_view user, std::string_view database,
                                 std::string_view reason = {}) {
  log::Fields f;
  f.client_id = info.id;
  f.address = info.addr;
  f.port = info.port;
  f.user = user;
  f.database = database;
  f.reason = reason;
  return f;
}

}  // namespace sluice::frontend

// MySQL users absent from [[users]], authenticated as MaxScale does: with `[mysql] auth_user`
// set, Sluice reads the user's mysql_native_password hash (SHA1(SHA1(password))) from the
// primary's mysql.user over a pooled connection of that user, verifies the client's scramble
// against it like any configured user's, and logs in to servers with the SHA1(password) the
// scramble yields. Learned users are kept a short while (bounded); a user with no native hash,
// or none at all, is refused as unknown.
#pragma once

#include <boost/asio.hpp>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "src/frontend/common/learned_users.hpp"
#include "src/pool/credentials.hpp"

namespace sluice::state {
struct Context;
class Snapshot;
}  // namespace sluice::state

namespace sluice::frontend::mysql {

// The MySQL front end's learned users.
LearnedUsers& learned_users();

// The credentials of `user` from the server (see above), or null.
boost::asio::awaitable<std::shared_ptr<const pool::Credentials>> lookup_mysql_user(state::Context& ctx, const state::Snapshot& snap,
                                                                                   const std::string& user,
                                                                                   boost::asio::any_io_executor ex);

}  // namespace sluice::frontend::mysql

// PostgreSQL users absent from [[users]] (PgBouncer's auth_query): with [postgres] auth_user
// set, Sluice runs auth_query on the primary over a pooled connection of that user, with the
// client's user name as the query's only parameter ($1, never spliced into the text), and takes
// the SCRAM verifier or md5 hash it returns. The client then authenticates against that secret,
// and Sluice logs in to the servers with the key its SCRAM proof yields (or the md5 hash), so no
// plaintext password is needed anywhere. The lookup connection is the auth_user's own: nothing
// from the client's startup packet (parameters, options) ever reaches it. Expired roles and
// roles without a usable secret are refused like unknown ones.
#pragma once

#include <boost/asio.hpp>

#include <memory>
#include <string>

#include "src/pool/credentials.hpp"

namespace sluice::state {
struct Context;
class Snapshot;
}  // namespace sluice::state

namespace sluice::frontend::pg {

// The credentials of `user` (learned, kept 30 s; a refusal 5 s), or null. `database`: the
// database the client asked for (where the query runs unless [postgres] auth_dbname says).
boost::asio::awaitable<std::shared_ptr<const pool::Credentials>> lookup_pg_user(state::Context& ctx,
                                                                                const state::Snapshot& snap,
                                                                                const std::string& user,
                                                                                const std::string& database,
                                                                                boost::asio::any_io_executor ex);

// Credentials that no password matches, for a user that does not exist: the client is taken
// through the same SCRAM exchange (same messages, same timing) and then refused as a wrong
// password would be, as PostgreSQL does, so user names cannot be probed.
std::shared_ptr<const pool::Credentials> mock_credentials(const std::string& user);

}  // namespace sluice::frontend::pg

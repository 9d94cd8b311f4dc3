// The admin console on the PostgreSQL listener (database "sluice"): simple and extended query
// protocols, answered by src/admin/console without any server connection.
#pragma once

#include <boost/asio.hpp>

#include <string>

#include "src/admin/console.hpp"
#include "src/net/tls.hpp"

namespace sluice::state {
struct Context;
}

namespace sluice::frontend::pg {

// Runs after authentication: sends the greeting (ParameterStatus, BackendKeyData,
// ReadyForQuery), then answers until Terminate or the connection ends. `buffered`: client
// bytes already read past the login.
boost::asio::awaitable<void> serve_admin(net::Channel sock, std::string buffered, state::Context& ctx, admin::Caller caller,
                                         std::size_t max_packet);

}  // namespace sluice::frontend::pg

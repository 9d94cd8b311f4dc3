// A PostgreSQL client session: startup, auth, attach, relay, detach (Odyssey's stage names).
#pragma once

#include <boost/asio.hpp>

#include "src/state/context.hpp"

namespace sluice::frontend::pg {

// Runs one client connection to completion on the calling worker.
boost::asio::awaitable<void> serve_client(boost::asio::ip::tcp::socket sock, state::Context& ctx);
// Shutdown: wakes sessions on this worker that wait idle for their client, so they can leave.

}  // namespace sluice::frontend::pg

// A MySQL / MariaDB client session: handshake, auth, then one command at a time: attach a
// server connection (state synced), relay the response, detach at transaction boundaries.
#pragma once

#include <boost/asio.hpp>

#include "src/state/context.hpp"

namespace sluice::frontend::mysql {

// Per-process state of the MySQL front end, created once at start-up.
void init_front_end();  // generates the RSA key pair for caching_sha2_password

// Runs one client connection to completion on the calling worker.
boost::asio::awaitable<void> serve_client(boost::asio::ip::tcp::socket sock, state::Context& ctx);
// The listener's net::AcceptScreen: a connection the per-address connection rate refuses is
// answered at accept with the protocol's error (frontend/common/admission.hpp).
bool refuse_at_accept(int fd, const boost::asio::ip::tcp::endpoint& peer, state::Context& ctx);
// Online upgrade (src/app/upgrade.hpp): the session of a client the previous process handed
// over, made again from its record on descriptor `fd` (taken), run on the calling worker.
boost::asio::awaitable<void> adopt_client(int fd, std::string record, state::Context& ctx);
// Shutdown: closes sessions on this worker that wait idle for their client.

}  // namespace sluice::frontend::mysql

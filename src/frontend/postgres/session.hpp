// A PostgreSQL client session: startup, auth, attach, relay, detach (Odyssey's stage names).
#pragma once

#include <boost/asio.hpp>

#include "src/state/context.hpp"

namespace sluice::frontend::pg {

// Runs one client connection to completion on the calling worker.
boost::asio::awaitable<void> serve_client(boost::asio::ip::tcp::socket sock, state::Context& ctx);
// The listener's net::AcceptScreen: a connection the per-address connection rate refuses is
// answered at accept with the protocol's error (frontend/common/admission.hpp).
bool refuse_at_accept(int fd, const boost::asio::ip::tcp::endpoint& peer, state::Context& ctx);
// Online upgrade (src/app/upgrade.hpp): the session of a client the previous process handed
// over, made again from its record on descriptor `fd` (taken), run on the calling worker.
boost::asio::awaitable<void> adopt_client(int fd, std::string record, state::Context& ctx);
// A CancelRequest for (pid, key) that reached the new process while this one still serves that
// client: handled as one that came here.
boost::asio::awaitable<void> cancel_by_key(std::uint32_t pid, std::uint32_t key);

}  // namespace sluice::frontend::pg

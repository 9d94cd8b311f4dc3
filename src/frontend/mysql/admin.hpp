// The admin console on the MySQL listener (database "sluice"): COM_QUERY and prepared
// statements (COM_STMT_PREPARE / EXECUTE, binary rows), answered by src/admin/console.
#pragma once

#include <boost/asio.hpp>

#include "src/admin/console.hpp"
#include "src/pool/mysql_io.hpp"

namespace sluice::state {
struct Context;
}

namespace sluice::frontend::mysql {

// Runs after authentication: sends the login OK, then answers commands until COM_QUIT or the
// connection ends. `caps`, `mariadb_caps`: the capabilities negotiated with the client.
boost::asio::awaitable<void> serve_admin(boost::asio::ip::tcp::socket& sock, pool::MysqlIo& io, state::Context& ctx,
                                         admin::Caller caller, std::uint32_t caps, std::uint32_t mariadb_caps);

}  // namespace sluice::frontend::mysql

// What every client session builds on, for both protocols' session classes to include once: the
// shared steps (admission and TLS, routing and the lease, the cache step, lease failures, a lost
// server, pool rules), the console, logging and the SQL classifier, and the Asio names the
// sessions use.
#pragma once

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <fmt/format.h>

#include <unordered_set>

#include "src/admin/console.hpp"
#include "src/frontend/common/admission.hpp"
#include "src/frontend/common/cache_lookup.hpp"
#include "src/frontend/common/client_limits.hpp"
#include "src/frontend/common/door_checks.hpp"
#include "src/frontend/common/lease_failure.hpp"
#include "src/frontend/common/client_routing.hpp"
#include "src/frontend/common/pool_rules.hpp"
#include "src/frontend/common/server_loss.hpp"
#include "src/net/tls.hpp"
#include "src/observe/log.hpp"
#include "src/net/buffer_pool.hpp"
#include "src/sql/analysis.hpp"
#include "src/sql/classify.hpp"
#include "src/sql/normalize.hpp"
#include "src/state/context.hpp"

namespace sluice::frontend {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;
using boost::system::error_code;

}  // namespace sluice::frontend

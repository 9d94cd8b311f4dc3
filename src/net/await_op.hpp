// Awaiting one Asio operation from a coroutine at the least cost. `co_await op(..., use_awaitable)`
// runs the operation's initiation in a coroutine frame of its own (allocated, resumed and freed
// per operation); an operation given `await_op` is awaited directly by the calling frame (Asio's
// awaitable_async_op) and yields its results as a tuple, errors included, never thrown:
//
//   auto [ec, n] = co_await sock.async_read_some(asio::buffer(buf), net::await_op);
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/deferred.hpp>

namespace sluice::net {

inline constexpr auto await_op = boost::asio::as_tuple(boost::asio::deferred);

}  // namespace sluice::net

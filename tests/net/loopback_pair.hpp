// Two connected TCP sockets over 127.0.0.1 on one io_context, for tests of what runs on
// sockets (net/ tests).
#pragma once

#include <boost/asio.hpp>

namespace sluice::testing {

struct LoopbackPair {
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket client{io}, server{io};
  LoopbackPair() {
    boost::asio::ip::tcp::acceptor acc(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
    client.connect(acc.local_endpoint());
    acc.accept(server);
  }
};

}  // namespace sluice::testing

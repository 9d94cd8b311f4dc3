#include "src/net/buffer_pool.hpp"

namespace sluice::net {

BufferPool& client_buffers() {
  thread_local BufferPool pool(16 * 1024, 64);
  return pool;
}

BufferPool& server_buffers() {
  thread_local BufferPool pool(64 * 1024, 32);
  return pool;
}

void trim_buffers() {
  client_buffers().trim();
  server_buffers().trim();
}

}  // namespace sluice::net

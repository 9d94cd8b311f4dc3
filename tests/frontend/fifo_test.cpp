// frontend::Fifo: order, indexing behind the front, erase, and bounded storage under a queue
// that never drains (a client that pipelines without pause).
#include <doctest/doctest.h>

#include <algorithm>
#include <memory>
#include <string>

#include "src/frontend/common/fifo.hpp"

using sluice::frontend::Fifo;

TEST_CASE("first in, first out; indexing and erase behind the front") {
  Fifo<std::string> q;
  CHECK(q.empty());
  for (const char* s : {"a", "b", "c", "d"}) q.push_back(s);
  CHECK(q.size() == 4);
  CHECK(q.front() == "a");
  q.pop_front();
  CHECK(q[1] == "c");
  q.erase(1);
  CHECK(q.size() == 2);
  CHECK(q.front() == "b");
  CHECK(q[1] == "d");
  std::string joined;
  for (auto& s : q) joined += s;
  CHECK(joined == "bd");
  q.pop_front();
  q.pop_front();
  CHECK(q.empty());
}

TEST_CASE("a popped element's resources go at once, and a queue that never drains stays bounded") {
  auto held = std::make_shared<int>(1);
  Fifo<std::shared_ptr<int>> q;
  q.push_back(held);
  q.push_back(held);
  q.pop_front();
  CHECK(held.use_count() == 2);  // ours and the one still queued
  Fifo<int> pipeline;            // one request always in flight behind the one answered
  pipeline.push_back(0);
  std::size_t most = 0;
  for (int i = 1; i < 100000; ++i) {
    pipeline.push_back(i);
    CHECK(pipeline.front() == i - 1);
    pipeline.pop_front();
    most = std::max(most, pipeline.slots());
  }
  CHECK(pipeline.size() == 1);
  CHECK(most <= 4);
}

TEST_CASE("release_if_empty gives the storage back only when nothing is queued") {
  Fifo<int> q;
  for (int i = 0; i < 64; ++i) q.push_back(i);
  q.release_if_empty();  // still holds 64: kept
  CHECK(q.size() == 64);
  CHECK(q.front() == 0);
  while (!q.empty()) q.pop_front();
  CHECK(q.capacity() >= 64);  // emptied, the storage stays for the next pushes
  q.release_if_empty();
  CHECK(q.capacity() == 0);
  q.push_back(7);  // usable again
  CHECK(q.front() == 7);
}

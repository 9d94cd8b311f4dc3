// Holds many logged-in, idle PostgreSQL clients open (bench/idle_compare.sh): opens `n`
// connections with libpq's non-blocking API (at most `parallel` logging in at once), runs one
// query on each, prints "ready <connected> <failed> <seconds>" and waits for a line on stdin; then
// closes them all and prints "closed". Bounded: gives up on a connection after 30 s plus 10 ms
// per login in flight (this one thread derives every client's SCRAM key, about 5 ms each: with
// 5000 started at once, as the storm of bench/latency_compare.sh does, the last key is ready
// some 25 s in, through no fault of the proxy), and on the whole run after `n` / 50 + 60 s.
//   idle_clients "host=127.0.0.1 port=6432 user=app password=app dbname=app" 10000 [parallel]
#include <libpq-fe.h>
#include <poll.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

namespace {

enum class Stage { Connecting, Querying, Idle, Failed };

struct Client {
  PGconn* conn = nullptr;
  Stage stage = Stage::Connecting;
  PostgresPollingStatusType want = PGRES_POLLING_WRITING;
  std::chrono::steady_clock::time_point started;
};

// Advances one client; returns true when it reached Idle or Failed.
bool step(Client& c) {
  if (c.stage == Stage::Connecting) {
    c.want = PQconnectPoll(c.conn);
    if (c.want == PGRES_POLLING_FAILED) {
      c.stage = Stage::Failed;
      return true;
    }
    if (c.want != PGRES_POLLING_OK) return false;
    if (!PQsendQuery(c.conn, "SELECT 1")) {
      c.stage = Stage::Failed;
      return true;
    }
    c.stage = Stage::Querying;
    c.want = PGRES_POLLING_READING;
    return false;
  }
  if (c.stage == Stage::Querying) {
    if (!PQconsumeInput(c.conn)) {
      c.stage = Stage::Failed;
      return true;
    }
    while (!PQisBusy(c.conn)) {
      PGresult* r = PQgetResult(c.conn);
      if (!r) {
        c.stage = Stage::Idle;
        return true;
      }
      if (PQresultStatus(r) != PGRES_TUPLES_OK) c.stage = Stage::Failed;
      PQclear(r);
      if (c.stage == Stage::Failed) return true;
    }
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: idle_clients CONNINFO N [PARALLEL]\n";
    return 2;
  }
  std::string conninfo = argv[1];
  const std::size_t n = std::strtoul(argv[2], nullptr, 10);
  const std::size_t parallel = argc > 3 ? std::strtoul(argv[3], nullptr, 10) : 100;
  const auto t0 = std::chrono::steady_clock::now();
  const auto deadline = t0 + std::chrono::seconds(n / 50 + 60);
  const auto give_up = std::chrono::seconds(30) + std::chrono::milliseconds(10) * parallel;
  std::vector<Client> clients(n);
  std::size_t next = 0, active = 0, idle = 0, failed = 0;
  std::vector<pollfd> fds;
  std::vector<std::size_t> who;
  while (idle + failed < n && std::chrono::steady_clock::now() < deadline) {
    while (active < parallel && next < n) {
      auto& c = clients[next++];
      c.conn = PQconnectStart(conninfo.c_str());
      c.started = std::chrono::steady_clock::now();
      if (!c.conn || PQstatus(c.conn) == CONNECTION_BAD) {
        c.stage = Stage::Failed;
        ++failed;
        continue;
      }
      PQsetnonblocking(c.conn, 1);
      ++active;
    }
    fds.clear();
    who.clear();
    auto now = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < next; ++i) {
      auto& c = clients[i];
      if (c.stage != Stage::Connecting && c.stage != Stage::Querying) continue;
      if (now - c.started > give_up) {
        c.stage = Stage::Failed;
        ++failed;
        --active;
        continue;
      }
      short ev = c.want == PGRES_POLLING_WRITING ? POLLOUT : POLLIN;
      fds.push_back({PQsocket(c.conn), ev, 0});
      who.push_back(i);
    }
    if (fds.empty()) continue;
    if (::poll(fds.data(), fds.size(), 100) < 0) break;
    for (std::size_t k = 0; k < fds.size(); ++k) {
      if (!fds[k].revents) continue;
      auto& c = clients[who[k]];
      if (step(c)) {
        --active;
        if (c.stage == Stage::Idle) ++idle;
        else {
          if (failed < 3) std::cerr << "idle_clients: " << PQerrorMessage(c.conn);
          ++failed;
        }
      }
    }
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("ready %zu %zu %.1f\n", idle, n - idle, secs);
  std::fflush(stdout);
  std::string line;
  std::getline(std::cin, line);
  for (auto& c : clients)
    if (c.conn) PQfinish(c.conn);
  std::printf("closed\n");
  std::fflush(stdout);
  return 0;
}

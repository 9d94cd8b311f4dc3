// Holds many logged-in, idle MySQL clients open (bench/idle_compare.sh, BENCH_PROTOCOL=mysql):
// opens `n` connections to 127.0.0.1:port with MariaDB Connector/C (user app / app, database
// app; TLS, unverified, when the third argument is "tls"), runs one query on each, prints "ready <connected> <failed>
// <seconds>" and waits for a line on stdin; then closes them all and prints "closed". Bounded: each connection gives up
// after 30 s, and the run stops opening new ones after `n` / 50 + 60 seconds.
//   idle_mysql_clients 6474 10000 [tls]
#include <mysql.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: idle_mysql_clients PORT N [tls]\n";
    return 2;
  }
  const unsigned port = static_cast<unsigned>(std::strtoul(argv[1], nullptr, 10));
  const std::size_t n = std::strtoul(argv[2], nullptr, 10);
  my_bool tls = argc > 3 && std::string(argv[3]) == "tls";
  const auto t0 = std::chrono::steady_clock::now();
  const auto deadline = t0 + std::chrono::seconds(n / 50 + 60);
  std::vector<MYSQL*> clients;
  clients.reserve(n);
  std::size_t failed = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (std::chrono::steady_clock::now() > deadline) {
      failed += n - i;
      break;
    }
    MYSQL* m = mysql_init(nullptr);
    unsigned timeout = 30;
    mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
    mysql_options(m, MYSQL_OPT_READ_TIMEOUT, &timeout);
    mysql_options(m, MYSQL_OPT_SSL_ENFORCE, &tls);
    bool ok = mysql_real_connect(m, "127.0.0.1", "app", "app", "app", port, nullptr, 0) != nullptr &&
              (!tls || mysql_get_ssl_cipher(m) != nullptr) && mysql_query(m, "SELECT 1") == 0;
    if (ok) {
      MYSQL_RES* r = mysql_store_result(m);
      ok = r != nullptr;
      if (r) mysql_free_result(r);
    }
    if (!ok) {
      if (failed < 3) std::cerr << "idle_mysql_clients: " << mysql_error(m) << "\n";
      ++failed;
      mysql_close(m);
      continue;
    }
    clients.push_back(m);
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("ready %zu %zu %.1f\n", clients.size(), failed, secs);
  std::fflush(stdout);
  std::string line;
  std::getline(std::cin, line);
  for (MYSQL* m : clients) mysql_close(m);
  std::printf("closed\n");
  std::fflush(stdout);
  return 0;
}

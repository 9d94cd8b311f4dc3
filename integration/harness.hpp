// Integration-test harness: starts Sluice processes with a given config against the sandbox
// (or any PostgreSQL named by SLUICE_PG_HOST / SLUICE_PG_PORT) and connects with libpq.
#pragma once

#include <libpq-fe.h>
#include <mysql.h>

#include <chrono>
#include <string>
#include <thread>
#include <utility>

namespace sluice::itest {

std::string env_or(const char* name, const std::string& fallback);
std::string pg_host();
int pg_port();
int my_port();  // the sandbox MariaDB primary (SLUICE_MY_PRIMARY_PORT, 13306)

// A running `sluice -c <generated file>`; stopped with SIGTERM (then SIGKILL) on destruction.
class SluiceProcess {
 public:
  // `extra` is appended to a base config that defines users app/md5user, cluster "pg" (the
  // sandbox PostgreSQL primary) and cluster "my" (the sandbox MariaDB primary).
  explicit SluiceProcess(const std::string& pools_and_extra, const std::string& general_extra = "");
  ~SluiceProcess();
  int port() const { return port_; }
  int my_port() const { return port_ + 500; }  // Sluice's MySQL listener
  static std::string mysql_extra;               // keys added to [mysql] of the next process
  static std::string postgres_extra;            // keys added to [postgres] (also on rewrites)
  static bool listen_v6;                        // both listeners on [::1] too, same ports
  // Waits (bounded) for the process to exit; returns its wait status, or -1 on timeout.
  int wait_exit(int timeout_ms);
  // Waits (bounded) until Sluice's stderr contains `needle`.
  bool wait_for_log(const std::string& needle, int timeout_ms) const;
  // Rewrites the config file with new pools/general parts and sends SIGHUP.
  void reload(const std::string& pools_and_extra, const std::string& general_extra = "");
  // Rewrites the config file without telling Sluice (RELOAD from the console picks it up).
  void rewrite(const std::string& pools_and_extra, const std::string& general_extra = "") {
    write_config(pools_and_extra, general_extra);
  }
  // Writes `text` as the whole config file (e.g. a broken one).
  void rewrite_raw(const std::string& text) const;
  const std::string& log_path() const { return log_path_; }
  // The PostgreSQL listener port written by the next rewrite()/reload() (default: port()).
  void set_pg_listen_port(int p) { pg_listen_port_ = p; }
  int pid() const { return pid_; }
  long rss_kb() const;  // resident memory of the process (VmRSS), in KiB
  std::string conninfo(const std::string& user = "app", const std::string& password = "app",
                       const std::string& db = "app") const;

 private:
  void write_config(const std::string& pools_and_extra, const std::string& general_extra);
  static std::string listen_value(int port);
  int pid_ = -1;
  int port_ = 0;
  int pg_listen_port_ = 0;
  std::string config_path_;
  std::string log_path_;  // Sluice's stderr; copied to the test's stderr when the process ends
};

// Polls every 20 ms (bounded by `timeout_ms`) until `fn` returns true.
template <typename F>
bool eventually(F fn, int timeout_ms = 5000) {
  for (int waited = 0; waited <= timeout_ms; waited += 20) {
    if (fn()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

// RAII PGconn.
struct Conn {
  PGconn* c = nullptr;
  explicit Conn(const std::string& conninfo) : c(PQconnectdb(conninfo.c_str())) {}
  ~Conn() {
    if (c) PQfinish(c);
  }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;
  bool ok() const { return PQstatus(c) == CONNECTION_OK; }
  std::string error() const { return PQerrorMessage(c); }
  // Runs `sql`; returns the first column of the first row, or "ERROR:<sqlstate>" on failure.
  std::string scalar(const std::string& sql);
  // Runs `sql`, expecting success (command or tuples).
  bool exec(const std::string& sql);
};

// RAII Connector/C connection to 127.0.0.1:port over plaintext (`flags`: CLIENT_* options).
struct MyConn {
  MYSQL* m = mysql_init(nullptr);
  bool ok = false;
  // `program`: the program_name connect attribute, when given.
  explicit MyConn(int port, const std::string& user = "app", const std::string& pw = "app", const char* db = "app",
                  unsigned long flags = 0, const char* program = nullptr);
  ~MyConn() { mysql_close(m); }
  MyConn(const MyConn&) = delete;
  MyConn& operator=(const MyConn&) = delete;
  // Runs `sql`: the first column of the first row ("" for none, "NULL"), or "ERR:<errno>".
  std::string scalar(const std::string& sql);
};

// GET http://127.0.0.1:port/path: the status code and the body.
std::pair<int, std::string> http_get(int port, const std::string& path);
// The value of `series` (name with labels, as printed) in a Prometheus text page, or -1.
double metric(const std::string& text, const std::string& series);

// A TCP connection to 127.0.0.1:port; returns the fd, or -1.
int loopback_connect(int port);

// A superuser connection straight to the backend (for checks behind Sluice's back).
std::string direct_conninfo(const std::string& db = "app");

}  // namespace sluice::itest

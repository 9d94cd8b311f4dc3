// Harness implementation: process control with fork/exec, bounded waits, libpq helpers.
#include "harness.hpp"

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace sluice::itest {

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}
std::string pg_host() { return env_or("SLUICE_PG_HOST", "127.0.0.1"); }
int pg_port() { return std::stoi(env_or("SLUICE_PG_PORT", env_or("SLUICE_PG_PRIMARY_PORT", "15432"))); }
int my_port() { return std::stoi(env_or("SLUICE_MY_PRIMARY_PORT", "13306")); }

std::string SluiceProcess::mysql_extra;
std::string SluiceProcess::postgres_extra;
bool SluiceProcess::listen_v6 = false;

std::string SluiceProcess::listen_value(int port) {
  std::string v4 = "\"127.0.0.1:" + std::to_string(port) + "\"";
  return listen_v6 ? "[" + v4 + ", \"[::1]:" + std::to_string(port) + "\"]" : v4;
}

namespace {
std::atomic<int> g_next_port{0};

bool port_accepts(int port) {
  int fd = loopback_connect(port);
  if (fd >= 0) ::close(fd);
  return fd >= 0;
}
}  // namespace

int loopback_connect(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

void SluiceProcess::write_config(const std::string& pools_and_extra, const std::string& general_extra) {
  std::ofstream f(config_path_);
  f << "[general]\nworkers = 2\nlog_level = \"" << env_or("SLUICE_TEST_LOG_LEVEL", "warn") << "\"\n"
    << general_extra << "\n"
    << "[postgres]\nlisten = " << listen_value(pg_listen_port_ ? pg_listen_port_ : port_) << "\n"
    << postgres_extra << "\n\n"
    << "[mysql]\nlisten = " << listen_value(my_port()) << "\n"
    << mysql_extra << "\n\n"
    << "[[users]]\nname = \"app\"\npassword = \"app\"\n\n"
    << "[[users]]\nname = \"md5user\"\npassword = \"md5pass\"\nauth = \"md5\"\n\n"
    << "[clusters.pg]\nprotocol = \"postgres\"\nprimary = \"" << pg_host() << ":" << pg_port() << "\"\n\n"
    << "[clusters.my]\nprotocol = \"mysql\"\nprimary = \"127.0.0.1:" << sluice::itest::my_port() << "\"\n\n"
    << pools_and_extra << "\n";
  f.close();
}

void SluiceProcess::rewrite_raw(const std::string& text) const {
  std::ofstream f(config_path_);
  f << text;
}

int SluiceProcess::wait_exit(int timeout_ms) {
  for (int waited = 0; pid_ > 0 && waited <= timeout_ms; waited += 50) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return status;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return -1;
}

void SluiceProcess::reload(const std::string& pools_and_extra, const std::string& general_extra) {
  write_config(pools_and_extra, general_extra);
  ::kill(pid_, SIGHUP);
}

SluiceProcess::SluiceProcess(const std::string& pools_and_extra, const std::string& general_extra) {
  if (g_next_port == 0) g_next_port = std::stoi(env_or("SLUICE_TEST_PORT_BASE", "16432"));
  port_ = g_next_port++;
  config_path_ = env_or("TMPDIR", "/tmp") + "/sluice-itest-" + std::to_string(::getpid()) + "-" + std::to_string(port_) + ".toml";
  write_config(pools_and_extra, general_extra);
  log_path_ = config_path_ + ".log";
  std::string bin = env_or("SLUICE_BIN", SLUICE_DEFAULT_BIN);
  pid_ = ::fork();
  if (pid_ == 0) {
    // A test that crashes takes its Sluice with it: no orphan keeps the ports, or CTest's output
    // pipe open (CTest then waits for it until the test's timeout).
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    int log_fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (log_fd >= 0) ::dup2(log_fd, 1), ::dup2(log_fd, 2);
    ::execl(bin.c_str(), bin.c_str(), "-c", config_path_.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  for (int i = 0; i < 200; ++i) {  // up to 10 s
    if (port_accepts(port_) && port_accepts(my_port())) return;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("sluice exited during start-up; config " + config_path_);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  throw std::runtime_error("sluice did not start listening on port " + std::to_string(port_));
}

SluiceProcess::~SluiceProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 100; ++i) {  // up to 10 s for a graceful stop
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        // A stop (or an exit of its own) must be clean: a crash at exit, or a sanitizer's report
        // (the ASan build exits non-zero), fails the test that ran it.
        if (WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0)) {
          std::string why = WIFSIGNALED(status) ? "signal " + std::to_string(WTERMSIG(status))
                                                : "status " + std::to_string(WEXITSTATUS(status));
          FAIL_CHECK(("sluice did not exit cleanly (" + why + "); its log follows").c_str());
        }
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
    }
  }
  ::unlink(config_path_.c_str());
  std::ifstream log(log_path_);
  std::string line;
  while (std::getline(log, line)) std::fprintf(stderr, "%s\n", line.c_str());
  ::unlink(log_path_.c_str());
}

long SluiceProcess::rss_kb() const {
  std::ifstream status("/proc/" + std::to_string(pid_) + "/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return 0L;
}

bool SluiceProcess::wait_for_log(const std::string& needle, int timeout_ms) const {
  for (int waited = 0; waited <= timeout_ms; waited += 50) {
    std::ifstream log(log_path_);
    std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
    if (text.find(needle) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

std::string SluiceProcess::conninfo(const std::string& user, const std::string& password, const std::string& db) const {
  return "host=127.0.0.1 port=" + std::to_string(port_) + " user=" + user + " password=" + password + " dbname=" + db +
         " connect_timeout=10 sslmode=disable";
}

std::string direct_conninfo(const std::string& db) {
  return "host=" + pg_host() + " port=" + std::to_string(pg_port()) + " user=" + env_or("SLUICE_PG_SUPERUSER", "postgres") +
         " password=" + env_or("SLUICE_PG_SUPERPASSWORD", "postgres") + " dbname=" + db + " sslmode=disable";
}

MyConn::MyConn(int port, const std::string& user, const std::string& pw, const char* db, unsigned long flags,
               const char* program) {
  my_bool no_tls = 0;
  mysql_optionsv(m, MYSQL_OPT_SSL_ENFORCE, &no_tls);
  if (program) mysql_optionsv(m, MYSQL_OPT_CONNECT_ATTR_ADD, "program_name", program);
  ok = mysql_real_connect(m, "127.0.0.1", user.c_str(), pw.c_str(), db, static_cast<unsigned>(port), nullptr, flags) !=
       nullptr;
}

std::string MyConn::scalar(const std::string& sql) {
  if (mysql_real_query(m, sql.data(), sql.size()) != 0) return "ERR:" + std::to_string(mysql_errno(m));
  std::string out;
  if (MYSQL_RES* r = mysql_store_result(m)) {
    if (MYSQL_ROW row = mysql_fetch_row(r)) out = row[0] ? row[0] : "NULL";
    mysql_free_result(r);
  } else if (mysql_errno(m)) {
    return "ERR:" + std::to_string(mysql_errno(m));
  }
  return out;
}

std::pair<int, std::string> http_get(int port, const std::string& path) {
  int fd = loopback_connect(port);
  if (fd < 0) return {0, ""};
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  std::string resp;
  if (::write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
    char buf[65536];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) resp.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  int status = 0;
  std::sscanf(resp.c_str(), "HTTP/1.1 %d", &status);
  auto body = resp.find("\r\n\r\n");
  return {status, body == std::string::npos ? "" : resp.substr(body + 4)};
}

double metric(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  return -1;
}

std::string Conn::scalar(const std::string& sql) {
  PGresult* r = PQexec(c, sql.c_str());
  std::string out;
  auto st = PQresultStatus(r);
  if (st == PGRES_TUPLES_OK && PQntuples(r) > 0) out = PQgetvalue(r, 0, 0);
  else if (st == PGRES_FATAL_ERROR) {
    const char* code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    out = std::string("ERROR:") + (code ? code : "?");
  }
  PQclear(r);
  return out;
}

bool Conn::exec(const std::string& sql) {
  PGresult* r = PQexec(c, sql.c_str());
  auto st = PQresultStatus(r);
  PQclear(r);
  return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

}  // namespace sluice::itest

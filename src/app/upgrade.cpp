// Online upgrade (upgrade.hpp): starting the new process, the handshake on both sides, clients
// and cancels over the channel.
#include "src/app/upgrade.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "src/frontend/postgres/session.hpp"
#include "src/net/listening_sockets.hpp"
#include "src/net/record.hpp"
#include "src/observe/log.hpp"
#include "src/state/snapshot.hpp"

extern char** environ;

namespace sluice::app {

namespace asio = boost::asio;

namespace {

constexpr const char* kFdVariable = "SLUICE_UPGRADE_FD";
constexpr int kChildFd = 3;
constexpr int kHandshakeTimeoutMs = 60'000;  // a new process takes this long at most to load and listen
constexpr std::uint64_t kIdMargin = 100'000;

std::string g_exe;
std::vector<std::string> g_args;

std::string describe_exit(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("was killed by signal {}", WTERMSIG(status));
  return "ended";
}

// Starts the binary with this process's arguments and `child_fd` as descriptor 3 (every other
// descriptor beyond 2 closed): its pid, or -1 and errno.
pid_t spawn_successor(int child_fd) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, child_fd, kChildFd);  // dup2 clears close-on-exec
  posix_spawn_file_actions_addclosefrom_np(&fa, kChildFd + 1);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all_default;
  sigemptyset(&none);
  sigemptyset(&all_default);
  for (int s : {SIGHUP, SIGINT, SIGTERM, SIGUSR2, SIGPIPE}) sigaddset(&all_default, s);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all_default);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<std::string> env_store;
  for (char** e = environ; e && *e; ++e)
    if (std::strncmp(*e, "SLUICE_UPGRADE_FD=", 18) != 0) env_store.emplace_back(*e);
  env_store.push_back(fmt::format("{}={}", kFdVariable, kChildFd));
  std::vector<char*> envp, argv;
  for (auto& e : env_store) envp.push_back(e.data());
  envp.push_back(nullptr);
  for (auto& a : g_args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  int err = posix_spawn(&pid, g_exe.c_str(), &fa, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (err != 0) {
    errno = err;
    return -1;
  }
  return pid;
}

}  // namespace

void remember_command(int argc, char** argv) {
  std::array<char, PATH_MAX> buf{};
  ssize_t n = ::readlink("/proc/self/exe", buf.data(), buf.size() - 1);
  g_exe = n > 0 ? std::string(buf.data(), static_cast<std::size_t>(n)) : std::string(argv[0]);
  g_args.assign(argv, argv + argc);
}

int request_upgrade(const std::string& config_path) {
  std::shared_ptr<const state::Snapshot> snapshot;
  try {
    snapshot = state::build_snapshot(config::load_file(config_path), nullptr, state::FileReads::Reread);
  } catch (const config::ConfigError& e) {
    std::fprintf(stderr, "sluice: invalid configuration, no upgrade: %s\n", e.what());
    return 1;
  }
  const std::string& pid_file = snapshot->config->general.pid_file;
  if (pid_file.empty()) {
    std::fprintf(stderr, "sluice: --upgrade needs general.pid_file in %s (or send SIGUSR2 yourself)\n",
                 config_path.c_str());
    return 1;
  }
  auto read_pid = [&pid_file]() -> pid_t {
    FILE* f = std::fopen(pid_file.c_str(), "r");
    if (!f) return 0;
    int pid = 0;
    if (std::fscanf(f, "%d", &pid) != 1) pid = 0;
    std::fclose(f);
    return pid;
  };
  const pid_t old = read_pid();
  if (old <= 0 || ::kill(old, SIGUSR2) != 0) {
    std::fprintf(stderr, "sluice: no running Sluice named by %s\n", pid_file.c_str());
    return 1;
  }
  for (int i = 0; i < 600; ++i) {
    ::usleep(100'000);
    pid_t now = read_pid();
    if (now > 0 && now != old && ::kill(now, 0) == 0) {
      std::printf("sluice: upgraded: process %d took over from %d, which exits once its clients went\n",
                  static_cast<int>(now), static_cast<int>(old));
      return 0;
    }
  }
  std::fprintf(stderr, "sluice: no new process took over within 60 s; %d goes on (its log says why)\n",
               static_cast<int>(old));
  return 1;
}

Upgrader::~Upgrader() {
  closing_ = true;
  if (channel_) channel_->shut();
  if (thread_.joinable()) thread_.join();
}

std::string Upgrader::start(std::function<void()> on_ready, std::function<void(std::string)> on_failed) {
  if (running_) return ready_ ? "a new process took over already" : "an upgrade is already under way";
  if (thread_.joinable()) thread_.join();  // a failed attempt's
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    return fmt::format("socketpair: {}", std::strerror(errno));
  if (sv[1] == kChildFd) {  // dup2 onto itself would keep close-on-exec
    int moved = ::fcntl(sv[1], F_DUPFD_CLOEXEC, kChildFd + 1);
    ::close(sv[1]);
    sv[1] = moved;
  }
  pid_t child = spawn_successor(sv[1]);
  int spawn_errno = errno;
  ::close(sv[1]);
  if (child < 0) {
    ::close(sv[0]);
    return fmt::format("cannot start {}: {}", g_exe, std::strerror(spawn_errno));
  }
  log::info("upgrade: started {} (pid {}); waiting for it to load its configuration", g_exe, child);
  channel_ = std::make_unique<net::HandoffChannel>(sv[0]);
  on_ready_ = std::move(on_ready);
  on_failed_ = std::move(on_failed);
  running_ = true;
  thread_ = std::thread([this, child] { handshake(child); });
  return {};
}

void Upgrader::handshake(pid_t child) {
  auto fail = [&](std::string why) {
    int status = 0;
    pid_t r = 0;
    for (int i = 0; i < 50 && (r = ::waitpid(child, &status, WNOHANG)) == 0; ++i) ::usleep(100'000);
    if (r == 0) {  // still there, but not answering: it is not going to take over
      ::kill(child, SIGKILL);
      ::waitpid(child, &status, 0);
      why += "; it was stopped";
    } else if (r == child) {
      why += fmt::format("; it {}", describe_exit(status));
    }
    asio::post(control_, [this, why] {
      running_ = false;
      channel_->shut();
      on_failed_(why);
    });
  };
  auto hello = channel_->receive(kHandshakeTimeoutMs);
  if (!hello || hello->type != static_cast<std::uint8_t>(HandoffMsg::Hello))
    return fail(channel_->timed_out() ? "the new process did not answer" : "the new process did not start");
  for (auto& [key, fd] : net::listening::all())
    if (!channel_->send(static_cast<std::uint8_t>(HandoffMsg::Listener), key, fd))
      return fail("the new process went away while taking the listeners");
  // Client ids: the new process starts past this one's (whose clients keep theirs), with room
  // for the clients this one still accepts until the new one listens.
  net::RecordWriter ids;
  ids.u64(ctx_.client_table.peek_next_id() + kIdMargin);
  if (!channel_->send(static_cast<std::uint8_t>(HandoffMsg::ListenersDone), ids.bytes()))
    return fail("the new process went away while taking the listeners");
  auto ready = channel_->receive(kHandshakeTimeoutMs);
  if (!ready || ready->type != static_cast<std::uint8_t>(HandoffMsg::Ready))
    return fail(channel_->timed_out() ? "the new process did not start listening"
                                      : "the new process stopped before it listened");
  ready_ = true;
  asio::post(control_, on_ready_);
  for (;;) {
    auto m = channel_->receive();
    if (!m) break;
    if (m->fd >= 0) ::close(m->fd);
    if (m->type != static_cast<std::uint8_t>(HandoffMsg::Cancel)) continue;
    net::RecordReader r(m->payload);
    std::uint32_t pid = r.u32(), key = r.u32();
    if (!r.done() || !ctx_.control_executor) continue;
    asio::co_spawn(ctx_.control_executor(), frontend::pg::cancel_by_key(pid, key), asio::detached);
  }
  // The new process closed its end (it stopped): the clients still here stay here.
  ready_ = false;
  ctx_.upgrading = false;
  if (!closing_) log::warn("upgrade: the new process (pid {}) closed its channel; clients still here stay here", child);
}

bool Upgrader::hand_over(config::Protocol p, std::string_view record, int fd) {
  if (!ready_ || !channel_) return false;
  std::string payload(1, static_cast<char>(p));
  payload.append(record);
  if (!channel_->send(static_cast<std::uint8_t>(HandoffMsg::Client), payload, fd)) return false;
  handed_over_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

std::unique_ptr<Successor> Successor::from_environment() {
  const char* v = std::getenv(kFdVariable);
  if (!v) return nullptr;
  int fd = std::atoi(v);
  ::unsetenv(kFdVariable);
  if (fd < kChildFd || ::fcntl(fd, F_GETFD) < 0) return nullptr;
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  return std::make_unique<Successor>(fd);
}

Successor::~Successor() {
  channel_->shut();
  if (thread_.joinable()) thread_.join();
}

bool Successor::take_listeners(std::uint64_t& id_floor) {
  if (!channel_->send(static_cast<std::uint8_t>(HandoffMsg::Hello), {})) return false;
  for (;;) {
    auto m = channel_->receive(kHandshakeTimeoutMs);
    if (!m) return false;
    if (m->type == static_cast<std::uint8_t>(HandoffMsg::ListenersDone)) {
      net::RecordReader r(m->payload);
      id_floor = r.u64();
      return r.done();
    }
    if (m->type != static_cast<std::uint8_t>(HandoffMsg::Listener) || m->fd < 0) {
      if (m->fd >= 0) ::close(m->fd);
      return false;
    }
    net::listening::offer(m->payload, m->fd);
  }
}

void Successor::ready(std::function<void(config::Protocol, std::string record, int fd)> adopt,
                      std::function<void()> gone) {
  if (!channel_->send(static_cast<std::uint8_t>(HandoffMsg::Ready), {})) {
    open_ = false;
    gone();
    return;
  }
  thread_ = std::thread([this, adopt = std::move(adopt), gone = std::move(gone)] {
    for (;;) {
      auto m = channel_->receive();
      if (!m) break;
      if (m->type != static_cast<std::uint8_t>(HandoffMsg::Client) || m->fd < 0 || m->payload.empty()) {
        if (m->fd >= 0) ::close(m->fd);
        continue;
      }
      auto p = static_cast<config::Protocol>(static_cast<std::uint8_t>(m->payload[0]));
      adopt(p, m->payload.substr(1), m->fd);
    }
    open_ = false;
    gone();
  });
}

bool Successor::forward_cancel(std::uint32_t pid, std::uint32_t key) {
  if (!open_) return false;
  net::RecordWriter w;
  w.u32(pid);
  w.u32(key);
  return channel_->send(static_cast<std::uint8_t>(HandoffMsg::Cancel), w.bytes());
}

}  // namespace sluice::app

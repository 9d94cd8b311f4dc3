// Online upgrade: SIGUSR2 (or the console's UPGRADE) starts the binary again, at the path this
// process was started from (where a package upgrade put the new one), with the same arguments.
// The two talk over a Unix socket pair (net/handoff_channel.hpp), the new process's end passed
// as descriptor 3 and named by SLUICE_UPGRADE_FD:
//   new -> old  Hello          configuration loaded and valid, ready for the listeners
//   old -> new  Listener*      each listening socket with its key (net/listening_sockets.hpp)
//   old -> new  ListenersDone
//   new -> old  Ready          listening on them, workers running
//   old -> new  Client*        a client idle between transactions: its protocol, its session's
//                              record (the front end's handoff code) and its descriptor
//   new -> old  Cancel*        a CancelRequest for a client the old process still serves
// The old process stops accepting at Ready and hands clients over as each becomes idle; busy ones
// finish their transactions first, and those that cannot move (TLS, a LISTEN, session pooling,
// the console) stay until they leave. It exits when it has no client left, or after
// upgrade_timeout when one is set (the rest then get the shutdown's goodbye). When the new process fails before
// Ready (a bad configuration, say), it is gone and the old one goes on as before.
#pragma once

#include <boost/asio.hpp>

#include <sys/types.h>

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "src/net/handoff_channel.hpp"
#include "src/state/context.hpp"

namespace sluice::app {

enum class HandoffMsg : std::uint8_t { Hello = 1, Listener, ListenersDone, Ready, Client, Cancel };

// main(): what this process was started as (its binary's path, its arguments).
void remember_command(int argc, char** argv);

// `sluice --upgrade -c FILE`: FILE must be valid (what the new process will load); the process
// its pid_file names gets SIGUSR2, and this waits (at most 60 s) for a new process to write the
// pid file. Its exit code: 0 upgraded, 1 not (the reason is in the running Sluice's log).
int request_upgrade(const std::string& config_path);

// The process being replaced.
class Upgrader {
 public:
  Upgrader(state::Context& ctx, boost::asio::io_context& control) : ctx_(ctx), control_(control) {}
  ~Upgrader();
  Upgrader(const Upgrader&) = delete;
  Upgrader& operator=(const Upgrader&) = delete;
  // Starts the new process unless one is on its way or took over already ("" then; else why
  // not). `on_ready` runs on the control context once the new process listens; `on_failed` with
  // the reason when it failed first.
  std::string start(std::function<void()> on_ready, std::function<void(std::string)> on_failed);
  // A client to the new process (Context::hand_over): false when it could not go.
  bool hand_over(config::Protocol p, std::string_view record, int fd);
  bool started() const { return running_; }
  std::uint64_t handed_over() const { return handed_over_.load(std::memory_order_relaxed); }

 private:
  void handshake(pid_t child);
  state::Context& ctx_;
  boost::asio::io_context& control_;
  std::unique_ptr<net::HandoffChannel> channel_;
  std::thread thread_;
  std::function<void()> on_ready_;
  std::function<void(std::string)> on_failed_;
  bool running_ = false;  // control thread only
  std::atomic<bool> ready_{false};
  std::atomic<bool> closing_{false};
  std::atomic<std::uint64_t> handed_over_{0};  // this process is stopping: the channel's end is its own doing
};

// The process replacing another: made from SLUICE_UPGRADE_FD (null when it is not set).
class Successor {
 public:
  static std::unique_ptr<Successor> from_environment();
  explicit Successor(int fd) : channel_(std::make_unique<net::HandoffChannel>(fd)) {}
  ~Successor();
  Successor(const Successor&) = delete;
  Successor& operator=(const Successor&) = delete;
  // Hello, then the previous process's listening sockets into net::listening. False when that
  // process is gone (or answered nonsense): then this one starts as a fresh one would.
  // `id_floor`: the client ids this process gives start there (the previous one's clients keep
  // theirs).
  bool take_listeners(std::uint64_t& id_floor);
  // Listening now: Ready, then a thread receives the clients (`adopt`, on that thread) until the
  // previous process has exited (`gone`, on that thread too).
  void ready(std::function<void(config::Protocol, std::string record, int fd)> adopt, std::function<void()> gone);
  // A CancelRequest this process has no client for, to the previous process.
  bool forward_cancel(std::uint32_t pid, std::uint32_t key);

 private:
  std::unique_ptr<net::HandoffChannel> channel_;
  std::thread thread_;
  std::atomic<bool> open_{true};
};

}  // namespace sluice::app

// PostgreSQL LISTEN/NOTIFY for pooled clients (transaction and statement pooling). A client that
// LISTENs does not keep a server session, so one server connection per pool (the hub's) listens
// on the union of its clients' channels, and each NotificationResponse it receives goes to the
// mailboxes of the clients listening on that channel, whatever server connection they hold then.
//
// A client's LISTEN is subscribed here before its statement reaches the server (so nothing
// committed after that statement can be missed); notifications for a channel whose LISTEN has not
// committed yet are held, and given to the client, or dropped, when its transaction ends
// (NotifyMailbox::settle). The hub's connection opens with the first channel and closes with the
// last. When it is lost (server restart, pg_terminate_backend), its listening clients are closed
// with the server's message, as they would have been directly: a listener that silently stops
// hearing is worse than one that reconnects.
#pragma once

#include <boost/asio.hpp>

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "src/pool/server_conn.hpp"

namespace sluice::pool {

// One client's notifications. The hub delivers from its own worker; the client takes them on its
// own, woken by `wake` (posted to the client's executor, once per batch).
class NotifyMailbox : public std::enable_shared_from_this<NotifyMailbox> {
 public:
  NotifyMailbox(asio::any_io_executor ex, std::function<void()> wake) : ex_(std::move(ex)), wake_(std::move(wake)) {}

  // Hub side. `message` is the whole NotificationResponse; `pid` its sending backend.
  void deliver(const std::string& channel, std::uint32_t pid, std::string_view message);
  // The listening connection was lost: `fatal` (an ErrorResponse) is what the client is told.
  void close(std::string fatal);

  // Client side.
  // A LISTEN on `channel` is on its way to the server: notifications for it are held.
  void expect(const std::string& channel);
  // The client's request that may commit is about to reach the server: what is held so far was
  // committed before it (the server would skip it), and is dropped when the LISTEN commits.
  void mark();
  // The transaction ended: `committed` is what the client now listens on. Held notifications of
  // channels in it become the client's; channels not in it are dropped with what was queued for
  // them (as the server filters by its listen list when it reads its queue). Returns the channels
  // dropped (to unsubscribe).
  std::vector<std::string> settle(const std::set<std::string>& committed);
  // Something to take(), or closed().
  bool ready() const;
  // The notifications ready for the client, in order. Those sent by backend `own` (where this
  // client's own NOTIFY ran) carry `as` (the process id the client was given) instead.
  std::string take(std::uint32_t own, std::uint32_t as);
  std::optional<std::string> closed() const;
  // Past this many bytes waiting, the client is closed (54000) rather than notifications lost.
  static constexpr std::size_t kMaxQueued = 64u << 20;

 private:
  void wake_locked();
  struct Msg {
    std::string channel;
    std::uint64_t seq = 0;
    std::uint32_t pid = 0;
    std::string bytes;
  };
  mutable std::mutex mu_;
  asio::any_io_executor ex_;
  std::function<void()> wake_;
  std::map<std::string, bool, std::less<>> channels_;  // channel -> active (false: LISTEN not committed yet)
  std::deque<Msg> ready_, held_;
  std::size_t queued_bytes_ = 0;
  std::uint64_t seq_ = 0, mark_ = 0;
  std::optional<std::string> closed_;
  bool wake_posted_ = false;
};

class NotifyHub : public std::enable_shared_from_this<NotifyHub> {
 public:
  using Connect = std::function<asio::awaitable<ConnectResult>(asio::any_io_executor)>;
  // Runs on `ex` (one worker); `connect` opens a server connection of the pool.
  NotifyHub(asio::any_io_executor ex, std::string name, Connect connect)
      : ex_(std::move(ex)), name_(std::move(name)), connect_(std::move(connect)) {}

  // Has the listening connection listen on `channel` for `box`. Completes (on the caller's
  // executor) once the server confirmed it: "" then, else why not.
  asio::awaitable<std::string> subscribe(std::shared_ptr<NotifyMailbox> box, std::string channel);
  // `box` no longer listens on `channel` ("*": on any).
  void unsubscribe(std::shared_ptr<NotifyMailbox> box, std::string channel);
  // Shutdown: the connection closes, quietly for its clients.
  void close();

  struct Usage {
    std::size_t channels = 0, subscriptions = 0;
    std::uint32_t backend_pid = 0;  // 0: not connected
  };
  Usage usage() const;

 private:
  struct Waiter;
  struct Command {
    std::string channel;
    bool listen = true;
  };
  asio::awaitable<std::string> subscribe_here(std::shared_ptr<NotifyMailbox> box, std::string channel);
  void unsubscribe_here(const std::shared_ptr<NotifyMailbox>& box, const std::string& channel);
  void send(const Command& c);
  asio::awaitable<void> run();
  asio::awaitable<void> write_out();
  // One complete message from the server.
  void on_message(char type, std::string_view body);
  void lost(std::string fatal);
  void maybe_close();
  void publish();

  asio::any_io_executor ex_;
  const std::string name_;
  Connect connect_;
  // On ex_ only.
  std::shared_ptr<ServerConn> conn_;
  bool running_ = false, writing_ = false, closing_ = false, shut_ = false;
  std::string out_, fatal_, fatal_text_;
  std::map<std::string, std::set<std::shared_ptr<NotifyMailbox>>, std::less<>> subs_;
  std::set<std::string, std::less<>> listening_, requested_, unlistening_;
  std::map<std::string, std::vector<std::shared_ptr<Waiter>>, std::less<>> waiters_;
  std::deque<Command> inflight_;
  bool inflight_failed_ = false;
  std::string inflight_error_;
  // For usage(), from any thread.
  mutable std::mutex usage_mu_;
  Usage usage_;
};

}  // namespace sluice::pool

// PostgreSQL client session, LISTEN in pooled modes: the listening connection of the pool
// subscribes before the statement goes out, and notifications are written between the transactions
// of the client.
#include "src/frontend/postgres/client_session.hpp"

namespace sluice::frontend::pg {

awaitable<void> Session::prepare_listen() {
  for (auto& ch : relay_->take_new_listens()) {
    if (!hub_) hub_ = routing_.primary()->notify_hub(client_.get_executor());
    if (!mailbox_)
      mailbox_ =
          std::make_shared<pool::NotifyMailbox>(client_.get_executor(), [this, alive = std::weak_ptr<bool>(alive_)] {
            if (alive.expired()) return;
            notified_ = true;
            if (idle_wait_ || (idle_attached_ && relay_->tx_status() == 'I')) cancel_idle_wait();
          });
    mailbox_->expect(ch);
    listen_pending_ = true;
    std::string why = co_await hub_->subscribe(mailbox_, ch);
    if (!why.empty()) {
      log::warn(
          "client {}: LISTEN {}: the pool's listening connection is not available ({}); the client keeps its "
          "server connection instead",
          info_->id, ch, why);
      relay_->pin("LISTEN");
      relay_->set_pass_notifications(true);
    }
  }
  if (mailbox_) mailbox_->mark();  // what came meanwhile was committed before the LISTEN was sent
}

awaitable<bool> Session::deliver_notifications() {
  notified_ = false;
  if (auto fatal = mailbox_->closed()) {
    end_reason_ = "the connection listening for its notifications ended";
    std::string out = *fatal;
    co_await write_client(out);
    co_return false;
  }
  std::string out = mailbox_->take(own_notify_pid_, pid_);
  if (out.empty()) co_return true;
  co_return co_await write_client(out);
}

}  // namespace sluice::frontend::pg

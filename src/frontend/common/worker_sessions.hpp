// Per worker thread, the client sessions of both front ends: a janitor that ticks each of them
// every period while the worker has any (long waits watched, idle sessions parked), and the
// shutdown's kick of idle ones. Thread-local: registering and ticking take no lock.
#pragma once

#include <boost/asio/any_io_executor.hpp>

#include <chrono>

namespace sluice::frontend {

inline constexpr std::chrono::milliseconds kJanitorPeriod{250};

class TendedSession {
 public:
  // Every kJanitorPeriod, on the session's worker.
  virtual void janitor_tick() = 0;
  // Shutdown: an idle session ends (says goodbye where the protocol can); a busy one finishes.
  virtual void kick() = 0;

 protected:
  // Registers with this worker's list (and starts its janitor when it is the first).
  explicit TendedSession(const boost::asio::any_io_executor& ex);
  ~TendedSession();
  TendedSession(const TendedSession&) = delete;
  TendedSession& operator=(const TendedSession&) = delete;
};

// Kicks every session of the calling worker (run on each worker).
void kick_idle_sessions();

}  // namespace sluice::frontend

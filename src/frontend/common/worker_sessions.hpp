// Per worker thread, the client sessions of both front ends: a janitor that ticks each of them
// every period while the worker has any (long waits watched, idle sessions parked), and the
// shutdown's kick of idle ones. Thread-local: registering and ticking take no lock.
#pragma once

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstdint>

namespace sluice::frontend {

inline constexpr std::chrono::milliseconds kJanitorPeriod{250};
// A parked session that stays parked this long sleeps (frontend/common/admission.hpp): clients
// that come back sooner keep their session object, and pay nothing to make it again.
inline constexpr std::chrono::milliseconds kSleepAfter{2000};

class TendedSession {
 public:
  // Every kJanitorPeriod, on the session's worker.
  virtual void janitor_tick() = 0;
  // Shutdown: an idle session ends (says goodbye where the protocol can); a busy one finishes.
  virtual void kick() = 0;
  // The console's KILL (kill_local): the client gets the protocol's goodbye, written without
  // waiting, and its connection is closed; the session ends.
  virtual void kill() = 0;
  // Its ClientInfo id (SHOW CLIENTS); 0 for none.
  virtual std::uint64_t client_id() const = 0;

 protected:
  // Registers with this worker's list (and starts its janitor when it is the first).
  explicit TendedSession(const boost::asio::any_io_executor& ex);
  ~TendedSession();
  TendedSession(const TendedSession&) = delete;
  TendedSession& operator=(const TendedSession&) = delete;

 private:
  friend struct WorkerSessions;
  // The worker's list (intrusive: an idle client costs no node of a container).
  TendedSession *prev_ = nullptr, *next_ = nullptr;
};

// Kicks every session of the calling worker (run on each worker).
void kick_idle_sessions();

// Kills the session of client `id` if the calling worker has it (ClientInfo::kill_local).
void kill_local(std::uint64_t id);
// The calling worker's session of client `id`, or null (valid until that worker runs on).
TendedSession* find_local(std::uint64_t id);

}  // namespace sluice::frontend

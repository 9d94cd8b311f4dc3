// Sluice running (application.hpp): wiring of the shared state, workers, listeners, janitor,
// signals and shutdown.
#include "src/app/application.hpp"

#include <boost/asio.hpp>

#include <sys/resource.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <functional>

#include "sluice/version.hpp"
#include "src/app/listeners.hpp"
#include "src/app/sd_notify.hpp"
#include "src/app/upgrade.hpp"
#include "src/frontend/common/worker_sessions.hpp"
#include "src/memory/slab.hpp"
#include "src/net/buffer_pool.hpp"
#include "src/net/listening_sockets.hpp"
#include "src/frontend/mysql/session.hpp"
#include "src/frontend/postgres/session.hpp"
#include "src/net/runtime.hpp"
#include "src/observe/log.hpp"
#include "src/state/context.hpp"

namespace sluice::app {

namespace asio = boost::asio;

namespace {
void save_allowlist(state::Context& ctx) {
  auto snap = ctx.snapshot();
  if (auto err = ctx.firewall_list.save_if_dirty(snap->config->firewall.allowlist_file); !err.empty())
    log::error("firewall: {}", err);
}
void write_pid_file(const std::string& path) {
  if (path.empty()) return;
  std::string tmp = path + ".tmp";
  if (FILE* f = std::fopen(tmp.c_str(), "w")) {
    std::fprintf(f, "%d\n", static_cast<int>(::getpid()));
    std::fclose(f);
    if (std::rename(tmp.c_str(), path.c_str()) == 0) return;
  }
  log::warn("cannot write pid_file {}: {}", path, std::strerror(errno));
}

// At exit: the pid file goes, unless a newer process (an upgrade's) wrote its own there.
void remove_pid_file(const std::string& path) {
  if (path.empty()) return;
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return;
  int pid = 0;
  bool ours = std::fscanf(f, "%d", &pid) == 1 && pid == static_cast<int>(::getpid());
  std::fclose(f);
  if (ours) std::remove(path.c_str());
}
}  // namespace

int run(std::shared_ptr<const state::Snapshot> snapshot, const std::string& path) {
  const auto& cfg = *snapshot->config;
  log::set_level(cfg.general.log_level);
  log::set_format(cfg.general.log_format == config::General::LogFormat::Json ? "json" : "text");

  // Each client and server connection is a descriptor: lift the soft limit to the hard one.
  if (rlimit rl{}; getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rlimit rl{}; getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < cfg.general.max_client_conn + 256)
    log::warn("open file limit {} is low for max_client_conn = {}", rl.rlim_cur, cfg.general.max_client_conn);

  state::Context ctx;
  ctx.set_snapshot(snapshot);
  ctx.router.build(cfg, snapshot->credentials, snapshot->server_tls);
  ctx.set_cache(cfg.cache);
  ctx.set_firewall(*snapshot, true);
  net::Runtime rt(cfg.general.workers);
  ctx.control_executor = [&rt] { return asio::any_io_executor(rt.worker(0).get_executor()); };
  frontend::mysql::init_front_end();

  // Started by an online upgrade: the previous process's listening sockets are taken over
  // (src/app/upgrade.hpp), and the cache waits until that process is gone.
  auto successor = Successor::from_environment();
  if (successor) {
    std::uint64_t id_floor = 0;
    if (successor->take_listeners(id_floor)) {
      log::info("upgrade: took over the previous process's listeners");
      ctx.client_table.ids_from(id_floor);
      ctx.hold_cache(true);
    } else {
      log::warn("upgrade: the previous process did not hand its listeners over; starting afresh");
      successor.reset();
    }
  }
  Listeners listeners(rt, ctx);
  ctx.rebind_listeners = [&listeners](const config::Config& c) { return listeners.rebind(c); };
  if (auto err = ctx.rebind_listeners(cfg); !err.empty()) {
    log::error("{}", err);
    return 1;
  }
  net::listening::close_unclaimed();  // what the new configuration no longer listens on

  // Pool maintenance (idle timeouts, lifetimes, min_pool_size) once a second on worker 0; the
  // stats period (SHOW STATS averages) rolls every 15 seconds.
  asio::steady_timer janitor(rt.worker(0));
  unsigned ticks = 0;
  std::function<void()> tick = [&] {
    janitor.expires_after(std::chrono::seconds(1));
    janitor.async_wait([&](boost::system::error_code ec) {
      if (ec) return;
      ctx.pools.maintain(rt.worker(0).get_executor());
      if (++ticks % 15 == 0) ctx.stats.roll_period();
      // The firewall's learned fingerprints reach allowlist_file within 2 s.
      if (ticks % 2 == 0) save_allowlist(ctx);
      // Every 10 s the workers' I/O buffer pools drop what the last 10 s did not need and the
      // slabs give back the pages of the empty chunks they kept; every 30 s glibc gives its
      // free pages back to the system (memory freed after a burst).
      if (ticks % 10 == 9) {
        rt.each([] { net::trim_buffers(); });
        memory::Slab::trim_all();
      }
#ifdef __GLIBC__
      if (ticks % 30 == 0) malloc_trim(0);
#endif
      tick();
    });
  };
  tick();
  ctx.router.start(rt.worker(0).get_executor());
  ctx.cache_streams.reconfigure(*ctx.snapshot(), *ctx.cache, rt.worker(0).get_executor());
  ctx.mirrors.reconfigure(*ctx.snapshot()->config, ctx.snapshot()->server_tls, rt.worker(0).get_executor());

  // Everything a worker may reach (request_shutdown from the console) exists before the workers run.
  asio::io_context control;
  asio::signal_set signals(control, SIGINT, SIGTERM, SIGHUP);
  signals.add(SIGUSR2);
  std::function<void()> wait_signal, begin_shutdown, begin_upgrade, poll_handover;
  std::function<void()> poll_shutdown;  // lives as long as `control` runs its timer handlers
  std::chrono::steady_clock::time_point shutdown_deadline;
  bool stopping = false;
  asio::steady_timer shutdown_timer(control);
  Upgrader upgrader(ctx, control);
  ctx.hand_over = [&upgrader](config::Protocol p, std::string_view record, int fd) {
    return upgrader.hand_over(p, record, fd);
  };
  wait_signal = [&] {
    signals.async_wait([&](boost::system::error_code ec, int sig) {
      if (ec) return;
      if (sig == SIGUSR2) {
        begin_upgrade();
        wait_signal();
        return;
      }
      if (sig == SIGHUP) {
        log::info("SIGHUP: reloading {}", path);
        sd_notify(sd_reloading());
        try {
          state::reload(ctx, path);
        } catch (const config::ConfigError&) {
          // logged by reload()
        }
        sd_notify("READY=1");
        wait_signal();
        return;
      }
      begin_shutdown();
      wait_signal();
    });
  };
  begin_shutdown = [&] {
    if (stopping) {
      log::info("second shutdown request: stopping now");
      control.stop();
      return;
    }
    stopping = true;
    sd_notify("STOPPING=1");
    auto timeout = ctx.snapshot()->config->general.shutdown_timeout;
    log::info("shutting down: no new connections; waiting up to {} ms for open transactions", timeout.count());
    ctx.shutting_down = true;
    listeners.close_clients();
    shutdown_deadline = std::chrono::steady_clock::now() + timeout;
    poll_shutdown = [&] {
      rt.each([] { frontend::kick_idle_sessions(); });
      if (ctx.clients.load() == 0 || std::chrono::steady_clock::now() >= shutdown_deadline) {
        if (ctx.clients.load() > 0)
          log::warn("shutdown_timeout reached with {} clients still connected", ctx.clients.load());
        control.stop();
        return;
      }
      shutdown_timer.expires_after(std::chrono::milliseconds(100));
      shutdown_timer.async_wait([&](boost::system::error_code e) {
        if (!e) poll_shutdown();
      });
    };
    poll_shutdown();
  };
  // SIGUSR2: the new binary takes over (upgrade.hpp). Once it listens, this process accepts no
  // more clients, hands each over as it becomes idle, and stops when none is left (or, after
  // upgrade_timeout, shuts down for the ones that could not go).
  begin_upgrade = [&] {
    if (stopping) {
      log::warn("upgrade refused: Sluice is shutting down");
      return;
    }
    auto on_ready = [&] {
      log::event(log::Level::Info, "upgrade_ready", {},
                 "upgrade: the new process listens; {} clients go to it as each becomes idle", ctx.clients.load());
      listeners.hand_over();
      ctx.hold_cache(true);
      ctx.upgrading = true;
      const auto drain = ctx.snapshot()->config->general.upgrade_timeout;
      const bool bounded = drain.count() > 0;
      shutdown_deadline = std::chrono::steady_clock::now() + drain;
      unsigned polls = 0;
      poll_handover = [&, polls, bounded]() mutable {
        if (stopping) return;  // a shutdown took over
        if (polls++ % 10 == 0) rt.each([] { frontend::kick_idle_sessions(); });
        if (ctx.clients.load() == 0) {
          log::event(log::Level::Info, "upgrade_done", {},
                     "upgrade: done; {} clients went to the new process, the others left", upgrader.handed_over());
          control.stop();
          return;
        }
        if (bounded && std::chrono::steady_clock::now() >= shutdown_deadline) {
          log::warn("upgrade: {} clients could not go to the new process within upgrade_timeout; shutting down",
                    ctx.clients.load());
          begin_shutdown();
          return;
        }
        shutdown_timer.expires_after(std::chrono::milliseconds(100));
        shutdown_timer.async_wait([&](boost::system::error_code e) {
          if (!e) poll_handover();
        });
      };
      poll_handover();
    };
    auto on_failed = [](std::string why) {
      log::event(log::Level::Warn, "upgrade_failed", {}, "upgrade failed: {}; this process goes on serving", why);
    };
    if (auto err = upgrader.start(on_ready, on_failed); !err.empty()) log::warn("upgrade: {}", err);
  };
  ctx.request_shutdown = [&](bool wait) {
    asio::post(control, [&, wait] {
      if (!wait) {
        log::info("SHUTDOWN from the admin console: stopping now");
        control.stop();
        return;
      }
      begin_shutdown();
    });
  };
  rt.start();
  log::event(log::Level::Info, "started", {},
             "sluice {} started: {} workers; PostgreSQL on {}; MySQL on {}; metrics on {}", SLUICE_VERSION,
             cfg.general.workers, cfg.postgres.enabled ? cfg.postgres.listen.text() : std::string("(disabled)"),
             cfg.mysql.enabled ? cfg.mysql.listen.text() : std::string("(disabled)"),
             cfg.http.enabled ? cfg.http.listen.text() : std::string("(disabled)"));
  write_pid_file(cfg.general.pid_file);
  if (successor) {
    unsigned next = 0;
    ctx.forward_cancel = [&successor](std::uint32_t pid, std::uint32_t key) {
      return successor->forward_cancel(pid, key);
    };
    successor->ready(
        [&rt, &ctx, next](config::Protocol p, std::string record, int fd) mutable {
          auto ex = rt.worker(next++ % rt.size()).get_executor();
          if (p == config::Protocol::Postgres)
            asio::co_spawn(ex, frontend::pg::adopt_client(fd, std::move(record), ctx), asio::detached);
          else asio::co_spawn(ex, frontend::mysql::adopt_client(fd, std::move(record), ctx), asio::detached);
        },
        [&ctx, &control] {
          asio::post(control, [&ctx] {
            if (ctx.upgrading) return;  // this one is handing over to a newer process meanwhile: it stays off
            ctx.hold_cache(false);
            log::info("upgrade: the previous process has exited; the result cache is back on");
          });
        });
    // This process is the service's main process now (NotifyAccess=all in sluice.service).
    sd_notify(fmt::format("MAINPID={}\nREADY=1\nSTATUS=accepting clients (upgraded)", ::getpid()));
  } else {
    // Listeners are bound and the workers run: a Type=notify unit is started now.
    sd_notify("READY=1\nSTATUS=accepting clients");
  }

  wait_signal();
  control.run();
  successor.reset();  // its thread gives clients to the workers: gone before they stop
  ctx.upgrading = false;
  listeners.close_http();
  ctx.router.stop();
  ctx.cache_streams.stop();
  ctx.mirrors.stop();
  for (auto& p : ctx.pools.all()) p->close_all();
  janitor.cancel();
  rt.stop();
  rt.join();
  for (auto& p : ctx.pools.all()) p->drop_notify_hub();
  save_allowlist(ctx);
  remove_pid_file(cfg.general.pid_file);
  log::event(log::Level::Info, "stopped", {}, "sluice stopped");
  return 0;
}

}  // namespace sluice::app

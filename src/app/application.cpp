// Sluice running (application.hpp): wiring of the shared state, workers, listeners, janitor,
// signals and shutdown.
#include "src/app/application.hpp"

#include <boost/asio.hpp>

#include <sys/resource.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <csignal>
#include <functional>

#include "sluice/version.hpp"
#include "src/app/listeners.hpp"
#include "src/app/sd_notify.hpp"
#include "src/frontend/common/worker_sessions.hpp"
#include "src/net/buffer_pool.hpp"
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

  Listeners listeners(rt, ctx);
  ctx.rebind_listeners = [&listeners](const config::Config& c) { return listeners.rebind(c); };
  if (auto err = ctx.rebind_listeners(cfg); !err.empty()) {
    log::error("{}", err);
    return 1;
  }

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
      // Every 10 s the workers' I/O buffer pools drop what the last 10 s did not need; every
      // 30 s glibc gives its free pages back to the system (memory freed after a burst).
      if (ticks % 10 == 9) rt.each([] { net::trim_buffers(); });
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
  std::function<void()> wait_signal, begin_shutdown;
  std::function<void()> poll_shutdown;  // lives as long as `control` runs its timer handlers
  std::chrono::steady_clock::time_point shutdown_deadline;
  bool stopping = false;
  asio::steady_timer shutdown_timer(control);
  wait_signal = [&] {
    signals.async_wait([&](boost::system::error_code ec, int sig) {
      if (ec) return;
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
  // Listeners are bound and the workers run: a Type=notify unit is started now.
  sd_notify("READY=1\nSTATUS=accepting clients");

  wait_signal();
  control.run();
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
  log::event(log::Level::Info, "stopped", {}, "sluice stopped");
  return 0;
}

}  // namespace sluice::app

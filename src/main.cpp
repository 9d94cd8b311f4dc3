// sluice: wiring only. Parses arguments, loads the config, starts workers and listeners, and
// handles signals (SIGTERM/SIGINT: graceful shutdown; SIGHUP: reload).
#include <boost/asio.hpp>
#include <fmt/format.h>

#include <sys/resource.h>

#include <cstring>
#include <iostream>

#include "sluice/version.hpp"
#include "src/config/config.hpp"
#include "src/frontend/context.hpp"
#include "src/frontend/mysql/session.hpp"
#include "src/frontend/postgres/session.hpp"
#include "src/net/runtime.hpp"
#include "src/observe/log.hpp"

namespace asio = boost::asio;
using namespace sluice;

namespace {

void usage() {
  std::cout << "usage: sluice -c FILE          run with configuration FILE\n"
               "       sluice --check -c FILE  validate FILE and exit (0 = valid)\n"
               "       sluice --version        print the version\n";
}

}  // namespace

int main(int argc, char** argv) {
  std::string path;
  bool check = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--version" || a == "-V") {
      std::cout << "sluice " << SLUICE_VERSION << "\n";
      return 0;
    } else if (a == "--check") {
      check = true;
    } else if ((a == "-c" || a == "--config") && i + 1 < argc) {
      path = argv[++i];
    } else if (a == "-h" || a == "--help") {
      usage();
      return 0;
    } else {
      std::cerr << "sluice: unknown argument " << a << "\n";
      usage();
      return 2;
    }
  }
  if (path.empty()) {
    usage();
    return 2;
  }

  std::shared_ptr<const frontend::Snapshot> snapshot;
  try {
    snapshot = frontend::make_snapshot(config::load_file(path));
  } catch (const config::ConfigError& e) {
    std::cerr << "sluice: invalid configuration: " << e.what() << "\n";
    return 1;
  }
  if (check) {
    std::cout << "sluice: configuration " << path << " is valid\n";
    return 0;
  }
  const auto& cfg = *snapshot->config;
  log::set_level(cfg.general.log_level);
  if (cfg.http.enabled) log::warn("[http] is configured, but this build has no metrics endpoint yet; ignoring it");

  // Each client and server connection is a descriptor: lift the soft limit to the hard one.
  if (rlimit rl{}; getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rlimit rl{}; getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < cfg.general.max_client_conn + 256)
    log::warn("open file limit {} is low for max_client_conn = {}", rl.rlim_cur, cfg.general.max_client_conn);

  frontend::Context ctx;
  ctx.set_snapshot(snapshot);
  ctx.router.build(cfg, snapshot->credentials);
  if (cfg.cache.enabled) {
    ctx.cache = std::make_unique<cache::Store>(cfg.cache.max_bytes, std::max(4u, cfg.general.workers * 4));
    ctx.cache_policy = std::make_unique<cache::Policy>(cfg.cache);
  }
  net::Runtime rt(cfg.general.workers);
  std::unique_ptr<net::Listener> pg_listener, my_listener;
  try {
    if (cfg.postgres.enabled)
      pg_listener = std::make_unique<net::Listener>(rt, cfg.postgres.listen, [&ctx](asio::ip::tcp::socket s) {
        return frontend::pg::serve_client(std::move(s), ctx);
      });
    if (cfg.mysql.enabled) {
      frontend::mysql::init_front_end();
      my_listener = std::make_unique<net::Listener>(rt, cfg.mysql.listen, [&ctx](asio::ip::tcp::socket s) {
        return frontend::mysql::serve_client(std::move(s), ctx);
      });
    }
  } catch (const std::exception& e) {
    log::error("{}", e.what());
    return 1;
  }

  // Pool maintenance (idle timeouts, lifetimes, min_pool_size) once a second on worker 0.
  asio::steady_timer janitor(rt.worker(0));
  std::function<void()> tick = [&] {
    janitor.expires_after(std::chrono::seconds(1));
    janitor.async_wait([&](boost::system::error_code ec) {
      if (ec) return;
      ctx.pools.maintain(rt.worker(0).get_executor());
      tick();
    });
  };
  tick();
  ctx.router.start(rt.worker(0).get_executor());

  rt.start();
  log::info("sluice {} started: {} workers; PostgreSQL on {}; MySQL on {}", SLUICE_VERSION, cfg.general.workers,
            cfg.postgres.enabled ? cfg.postgres.listen.text() : std::string("(disabled)"),
            cfg.mysql.enabled ? cfg.mysql.listen.text() : std::string("(disabled)"));

  asio::io_context control;
  asio::signal_set signals(control, SIGINT, SIGTERM, SIGHUP);
  std::function<void()> wait_signal;
  std::function<void()> poll_shutdown;  // lives as long as `control` runs its timer handlers
  std::chrono::steady_clock::time_point shutdown_deadline;
  bool stopping = false;
  asio::steady_timer shutdown_timer(control);
  wait_signal = [&] {
    signals.async_wait([&](boost::system::error_code ec, int sig) {
      if (ec) return;
      if (sig == SIGHUP) {
        try {
          auto next = frontend::make_snapshot(config::load_file(path));
          log::set_level(next->config->general.log_level);
          ctx.set_snapshot(next);
          log::info("configuration reloaded from {}; new client connections use it", path);
        } catch (const config::ConfigError& e) {
          log::error("reload rejected, keeping the running configuration: {}", e.what());
        }
        wait_signal();
        return;
      }
      if (stopping) {
        log::info("second signal: stopping now");
        control.stop();
        return;
      }
      stopping = true;
      auto timeout = ctx.snapshot()->config->general.shutdown_timeout;
      log::info("shutting down: no new connections; waiting up to {} ms for open transactions", timeout.count());
      ctx.shutting_down = true;
      if (pg_listener) pg_listener->close();
      if (my_listener) my_listener->close();
      shutdown_deadline = std::chrono::steady_clock::now() + timeout;
      poll_shutdown = [&] {
        rt.each([] {
          frontend::pg::kick_idle_sessions();
          frontend::mysql::kick_idle_sessions();
        });
        if (ctx.clients.load() == 0 || std::chrono::steady_clock::now() >= shutdown_deadline) {
          if (ctx.clients.load() > 0) log::warn("shutdown_timeout reached with {} clients still connected", ctx.clients.load());
          control.stop();
          return;
        }
        shutdown_timer.expires_after(std::chrono::milliseconds(100));
        shutdown_timer.async_wait([&](boost::system::error_code e) {
          if (!e) poll_shutdown();
        });
      };
      poll_shutdown();
      wait_signal();
    });
  };
  wait_signal();
  control.run();
  ctx.router.stop();
  for (auto& p : ctx.pools.all()) p->close_all();
  janitor.cancel();
  rt.stop();
  rt.join();
  log::info("sluice stopped");
  return 0;
}

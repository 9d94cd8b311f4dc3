// sluice: wiring only. Parses arguments, loads the config, starts workers and listeners, and
// handles signals (SIGTERM/SIGINT: graceful shutdown; SIGHUP: reload).
#include <boost/asio.hpp>
#include <fmt/format.h>

#include <sys/resource.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <cstring>
#include <mutex>
#include <optional>
#include <csignal>
#include <iostream>

#include "sluice/version.hpp"
#include "src/admin/metrics.hpp"
#include "src/config/config.hpp"
#include "src/frontend/context.hpp"
#include "src/frontend/mysql/session.hpp"
#include "src/frontend/postgres/session.hpp"
#include "src/net/runtime.hpp"
#include "src/observe/sanitizer_defaults.hpp"
#include "src/observe/http.hpp"
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
  // A peer that closed its end must not kill the process: OpenSSL writes TLS records to the
  // socket itself with write(), which raises SIGPIPE (Asio's own sends use MSG_NOSIGNAL).
  std::signal(SIGPIPE, SIG_IGN);
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
    snapshot = frontend::build_snapshot(config::load_file(path), nullptr, frontend::FileReads::Reread);
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

  // Each client and server connection is a descriptor: lift the soft limit to the hard one.
  if (rlimit rl{}; getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rlimit rl{}; getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < cfg.general.max_client_conn + 256)
    log::warn("open file limit {} is low for max_client_conn = {}", rl.rlim_cur, cfg.general.max_client_conn);

  frontend::Context ctx;
  ctx.set_snapshot(snapshot);
  ctx.router.build(cfg, snapshot->credentials, snapshot->server_tls);
  ctx.set_cache(cfg.cache);
  net::Runtime rt(cfg.general.workers);
  ctx.control_executor = [&rt] { return asio::any_io_executor(rt.worker(0).get_executor()); };
  frontend::mysql::init_front_end();

  // Listeners: opened here, re-bound by a reload that changes an address (new one first; a
  // reload whose address cannot be bound is rejected and the old listener stays).
  struct Listeners {
    std::mutex mu;
    std::unique_ptr<net::Listener> pg, my;
    std::unique_ptr<observe::HttpServer> http;
    std::optional<config::Endpoint> pg_ep, my_ep, http_ep;
  } listeners;
  observe::HttpHandlers http_handlers{
      [&ctx] { return admin::prometheus(ctx); },
      [&ctx]() -> std::string { return ctx.shutting_down ? "shutting down" : ""; },
  };
  ctx.rebind_listeners = [&](const config::Config& c) -> std::string {
    std::lock_guard lock(listeners.mu);
    auto want = [](bool on, const config::Endpoint& ep) { return on ? std::optional(ep) : std::nullopt; };
    auto pg_want = want(c.postgres.enabled, c.postgres.listen), my_want = want(c.mysql.enabled, c.mysql.listen),
         http_want = want(c.http.enabled, c.http.listen);
    std::unique_ptr<net::Listener> pg, my;
    std::unique_ptr<observe::HttpServer> http;
    try {
      if (pg_want && pg_want != listeners.pg_ep)
        pg = std::make_unique<net::Listener>(rt, *pg_want, [&ctx](asio::ip::tcp::socket s) {
          return frontend::pg::serve_client(std::move(s), ctx);
        });
      if (my_want && my_want != listeners.my_ep)
        my = std::make_unique<net::Listener>(rt, *my_want, [&ctx](asio::ip::tcp::socket s) {
          return frontend::mysql::serve_client(std::move(s), ctx);
        });
      if (http_want && http_want != listeners.http_ep)
        http = std::make_unique<observe::HttpServer>(rt.worker(0), *http_want, http_handlers);
    } catch (const std::exception& e) {
      if (pg) pg->close();
      if (my) my->close();
      return e.what();
    }
    auto swap = [](auto& cur, auto& next, auto& cur_ep, const auto& want_ep, const char* what) {
      if (want_ep == cur_ep) return;
      if (cur) {
        cur->close();
        log::info("{} listener on {} closed", what, cur_ep->text());
      }
      cur = std::move(next);
      cur_ep = want_ep;
      if (cur_ep) log::info("{} listener on {}", what, cur_ep->text());
    };
    swap(listeners.pg, pg, listeners.pg_ep, pg_want, "PostgreSQL");
    swap(listeners.my, my, listeners.my_ep, my_want, "MySQL");
    swap(listeners.http, http, listeners.http_ep, http_want, "HTTP metrics");
    return {};
  };
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
#ifdef __GLIBC__
      // Once a minute, give glibc's free pages back to the system (memory freed after a burst).
      // It lowers a soak's RSS by about 200 KiB; it does not stop its slow creep (RESULTS.md).
      if (ticks % 60 == 0) malloc_trim(0);
#endif
      tick();
    });
  };
  tick();
  ctx.router.start(rt.worker(0).get_executor());

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
        try {
          frontend::reload(ctx, path);
        } catch (const config::ConfigError&) {
          // logged by reload()
        }
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
      auto timeout = ctx.snapshot()->config->general.shutdown_timeout;
      log::info("shutting down: no new connections; waiting up to {} ms for open transactions", timeout.count());
      ctx.shutting_down = true;
      {
        std::lock_guard lock(listeners.mu);
        if (listeners.pg) listeners.pg->close();
        if (listeners.my) listeners.my->close();
      }
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
  log::info("sluice {} started: {} workers; PostgreSQL on {}; MySQL on {}; metrics on {}", SLUICE_VERSION,
            cfg.general.workers, cfg.postgres.enabled ? cfg.postgres.listen.text() : std::string("(disabled)"),
            cfg.mysql.enabled ? cfg.mysql.listen.text() : std::string("(disabled)"),
            cfg.http.enabled ? cfg.http.listen.text() : std::string("(disabled)"));

  wait_signal();
  control.run();
  {
    std::lock_guard lock(listeners.mu);
    if (listeners.http) listeners.http->close();
  }
  ctx.router.stop();
  for (auto& p : ctx.pools.all()) p->close_all();
  janitor.cancel();
  rt.stop();
  rt.join();
  log::info("sluice stopped");
  return 0;
}

// sluice: parses the arguments, loads and checks the configuration, and hands over to the
// application (src/app: workers, listeners, signals, reload, shutdown).
#include <csignal>
#include <iostream>

#include "sluice/version.hpp"
#include "src/app/allocator_env.hpp"
#include "src/app/application.hpp"
#include "src/app/passwd.hpp"
#include "src/app/upgrade.hpp"
#include "src/config/config.hpp"
#include "src/observe/sanitizer_defaults.hpp"
#include "src/state/snapshot.hpp"

using namespace sluice;

namespace {

void usage() {
  std::cout << "usage: sluice -c FILE          run with configuration FILE\n"
               "       sluice --check -c FILE  validate FILE and exit (0 = valid)\n"
               "       sluice --upgrade -c FILE  validate FILE, have the Sluice named by its pid_file start\n"
               "                               the binary again and take over (SIGUSR2); exit 0 once it did\n"
               "       sluice --version        print the version\n"
               "       sluice passwd USER      print the stored forms of a password, for sluice.toml\n";
}

}  // namespace

int main(int argc, char** argv) {
  // A peer that closed its end must not kill the process: OpenSSL writes TLS records to the
  // socket itself with write(), which raises SIGPIPE (Asio's own sends use MSG_NOSIGNAL).
  std::signal(SIGPIPE, SIG_IGN);
  if (argc >= 2 && std::string_view(argv[1]) == "passwd") return app::passwd_main(argc - 1, argv + 1);
  std::string path;
  bool check = false, upgrade = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--version" || a == "-V") {
      std::cout << "sluice " << SLUICE_VERSION << "\n";
      return 0;
    } else if (a == "--check") {
      check = true;
    } else if (a == "--upgrade") {
      upgrade = true;
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
  if (upgrade) return app::request_upgrade(path);
  if (!check) app::restart_with_allocator_settings(argv);
  // An online upgrade (SIGUSR2) starts this same command again: until the signal handlers are
  // set, the signal is ignored rather than fatal.
  std::signal(SIGUSR2, SIG_IGN);
  app::remember_command(argc, argv);

  std::shared_ptr<const state::Snapshot> snapshot;
  try {
    snapshot = state::build_snapshot(config::load_file(path), nullptr, state::FileReads::Reread);
  } catch (const config::ConfigError& e) {
    std::cerr << "sluice: invalid configuration: " << e.what() << "\n";
    return 1;
  }
  if (check) {
    std::cout << "sluice: configuration " << path << " is valid\n";
    return 0;
  }
  return app::run(std::move(snapshot), path);
}

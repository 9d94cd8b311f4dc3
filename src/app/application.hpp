// Sluice running: the shared state (state::Context) built from the first snapshot, the workers,
// the listeners, the janitor (pool maintenance, stats periods), signals (SIGHUP: reload;
// SIGTERM/SIGINT: graceful shutdown, twice: at once) and the console's SHUTDOWN. main() parses
// the arguments and hands over to run().
#pragma once

#include <memory>
#include <string>

#include "src/state/snapshot.hpp"

namespace sluice::app {

// Runs Sluice with `snapshot` (loaded from `path`, which SIGHUP reads again) until it is shut
// down; returns the process's exit code.
int run(std::shared_ptr<const state::Snapshot> snapshot, const std::string& path);

}  // namespace sluice::app

// libFuzzer target: the config loader (TOML parsing and every key's validation). Errors are
// ConfigError exceptions; anything else escaping is a bug.
#include <cstddef>
#include <cstdint>
#include <string>

#include "src/config/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    sluice::config::load_string(text, "fuzz.toml");
  } catch (const sluice::config::ConfigError&) {
  }
  return 0;
}

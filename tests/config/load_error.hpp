// The error a configuration text is refused with ("" when it loads), for config unit tests.
#pragma once

#include <string>

#include "src/config/config.hpp"

namespace sluice::test {

inline std::string load_error(const std::string& text) {
  try {
    config::load_string(text, "t.toml");
  } catch (const config::ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace sluice::test

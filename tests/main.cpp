// doctest entry point for the unit tests.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include "src/observe/sanitizer_defaults.hpp"

// `sluice passwd USER`: the stored forms of a password typed on the terminal (or given on
// standard input), ready to paste into sluice.toml so that the password itself is never in it.
#pragma once

#include <string>
#include <string_view>

namespace sluice::app {

// The text `sluice passwd` prints: a SCRAM-SHA-256 verifier (PostgreSQL's form, from `salt` and
// `iterations`), PostgreSQL's md5 secret (salted with the user name) and MySQL's
// mysql_native_password hash ("*" + 40 hex digits), each as a `password = "..."` line.
std::string password_secrets(std::string_view user, std::string_view password, std::string_view salt, int iterations);

// The command: argv[0] is "passwd". Returns the exit status.
int passwd_main(int argc, char** argv);

}  // namespace sluice::app

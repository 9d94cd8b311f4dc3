// `sluice passwd USER`: reads a password without echoing it (twice, when standard input is a
// terminal; one line otherwise, for scripts) and prints its stored forms.
#include "src/app/passwd.hpp"

#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>

#include "protocols/common/crypto.hpp"
#include "protocols/mysql/codec.hpp"
#include "protocols/postgres/scram.hpp"

namespace sluice::app {

namespace {

constexpr std::size_t kMaxPassword = 1024;
constexpr int kMinIterations = 4096;  // PostgreSQL's default and RFC 7677's minimum
constexpr int kMaxIterations = 10'000'000;

void usage() {
  std::cerr << "usage: sluice passwd USER [--iterations N]\n"
               "  Prints the SCRAM-SHA-256 verifier, the PostgreSQL md5 secret and the MySQL hash of a\n"
               "  password typed on the terminal (or read as one line from standard input).\n";
}

// One line from standard input; echo off while it is typed on a terminal.
bool read_line(std::string& out, bool tty, const char* prompt) {
  termios saved{};
  if (tty) {
    std::cerr << prompt << std::flush;
    tcgetattr(STDIN_FILENO, &saved);
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
  }
  out.clear();
  bool got = false;
  int c;
  while ((c = std::getchar()) != EOF) {
    got = true;
    if (c == '\n') break;
    if (out.size() > kMaxPassword) continue;  // refused below
    out.push_back(static_cast<char>(c));
  }
  if (!out.empty() && out.back() == '\r') out.pop_back();
  if (tty) {
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
    std::cerr << "\n";
  }
  return got;
}

std::string quoted(std::string_view s) {  // TOML basic string; the secrets hold no quote or backslash
  return "\"" + std::string(s) + "\"";
}

}  // namespace

std::string password_secrets(std::string_view user, std::string_view password, std::string_view salt, int iterations) {
  auto scram = pg::format_scram_secret(pg::make_scram_secret(password, salt, iterations));
  std::string out;
  out += "# user \"" + std::string(user) + "\": paste one of these as its password in sluice.toml\n";
  out += "# PostgreSQL clients, SCRAM-SHA-256:\n";
  out += "password = " + quoted(scram) + "\n";
  out += "# PostgreSQL clients, md5 (salted with the user name: valid for this user only):\n";
  out += "password = " + quoted(crypto::pg_md5_secret(password, user)) + "\n";
  out += "# MySQL and MariaDB clients, mysql_native_password:\n";
  out += "password = " + quoted(my::native_stored_hash(password)) + "\n";
  return out;
}

int passwd_main(int argc, char** argv) {
  std::string user;
  int iterations = pg::kScramDefaultIterations;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--iterations" && i + 1 < argc) {
      try {
        iterations = std::stoi(argv[++i]);
      } catch (const std::exception&) {
        iterations = 0;
      }
      if (iterations < kMinIterations || iterations > kMaxIterations) {
        std::cerr << "sluice passwd: --iterations must be between " << kMinIterations << " and " << kMaxIterations
                  << "\n";
        return 2;
      }
    } else if (a == "-h" || a == "--help") {
      usage();
      return 0;
    } else if (user.empty() && !a.empty() && a[0] != '-') {
      user = std::string(a);
    } else {
      usage();
      return 2;
    }
  }
  if (user.empty()) {
    usage();
    return 2;
  }
  const bool tty = isatty(STDIN_FILENO) != 0;
  std::string password, again;
  if (!read_line(password, tty, "Password: ")) {
    std::cerr << "sluice passwd: no password given\n";
    return 1;
  }
  if (password.empty() || password.size() > kMaxPassword) {
    std::cerr << "sluice passwd: the password must be 1 to " << kMaxPassword << " bytes\n";
    return 1;
  }
  if (tty) {
    if (!read_line(again, true, "Again: ") || again != password) {
      std::cerr << "sluice passwd: the passwords differ\n";
      return 1;
    }
  }
  std::cout << password_secrets(user, password, crypto::random_bytes(16), iterations);
  return 0;
}

}  // namespace sluice::app

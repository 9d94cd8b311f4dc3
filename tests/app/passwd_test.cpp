#include "src/app/passwd.hpp"

#include <doctest/doctest.h>

#include <sstream>
#include <string>
#include <vector>

#include "protocols/mysql/codec.hpp"
#include "protocols/postgres/scram.hpp"

using sluice::app::password_secrets;
namespace pg = sluice::pg;

namespace {

std::vector<std::string> secrets(const std::string& text) {  // the quoted values, in order
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("password = \"", 0) != 0) continue;
    REQUIRE(line.back() == '"');
    out.push_back(line.substr(12, line.size() - 13));
  }
  return out;
}

}  // namespace

TEST_CASE("passwd: the stored forms of a password") {
  auto text = password_secrets("postgres", "secret", "0123456789abcdef", 4096);
  auto s = secrets(text);
  REQUIRE(s.size() == 3);
  // PostgreSQL's md5 secret: "md5" + md5(password + user name).
  CHECK(s[1] == "md553f48b7c4b76a86ce72276c5755f217d");
  // MySQL's "*" + upper hex SHA1(SHA1(password)); the well-known hash of "password":
  CHECK(password_secrets("u", "password", "0123456789abcdef", 4096)
            .find("\"*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19\"") != std::string::npos);
  CHECK(s[2] == sluice::my::native_stored_hash("secret"));
  // The verifier parses, carries the salt and rounds, and a SCRAM exchange with the password
  // passes against it (and one with another password does not).
  auto parsed = pg::parse_scram_secret(s[0]);
  REQUIRE(parsed);
  CHECK(parsed->iterations == 4096);
  CHECK(parsed->salt == "0123456789abcdef");
  for (const char* pw : {"secret", "Secret"}) {
    pg::ScramServer server(*parsed);
    auto client = pg::ScramClient::from_password(pw);
    std::string err;
    auto first = server.client_first(client.client_first(), err);
    REQUIRE(first);
    auto final_msg = client.server_first(*first, err);
    REQUIRE(final_msg);
    auto verdict = server.client_final(*final_msg, err);
    CHECK(verdict.has_value() == (std::string(pw) == "secret"));
  }
  // No secret holds the password itself.
  CHECK(text.find("secret") == std::string::npos);
}

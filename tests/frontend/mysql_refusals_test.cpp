// The table of errors Sluice itself says to MySQL clients (frontend/mysql/refusals): every row
// formats with the arguments its callers pass, none carries a client-library code, and each one
// survives the round trip through an ERR packet as a client reads it.
#include <doctest/doctest.h>

#include "protocols/mysql/codec.hpp"
#include "src/frontend/mysql/refusals.hpp"

using namespace sluice;
using sluice::frontend::mysql::Refusal;
using sluice::frontend::mysql::refusal_row;
using sluice::frontend::mysql::refusal_text;

namespace {

constexpr auto kLast = static_cast<int>(Refusal::ServerLost);

std::string format_with(Refusal r, int n) {
  switch (n) {
    case 0:
      return refusal_text(r);
    case 1:
      return refusal_text(r, "a");
    case 2:
      return refusal_text(r, "a", "b");
    default:
      return refusal_text(r, "a", "b", "c");
  }
}

}  // namespace

TEST_CASE("every refusal formats with exactly its arguments, and fewer are an error") {
  for (int i = 0; i <= kLast; ++i) {
    auto r = static_cast<Refusal>(i);
    const auto& row = refusal_row(r);
    CAPTURE(row.text);
    CHECK(row.refusal == r);
    std::string text;
    CHECK_NOTHROW(text = format_with(r, row.args));
    CHECK(text.find('{') == std::string::npos);
    if (row.args > 0) CHECK_THROWS(format_with(r, row.args - 1));
  }
}

TEST_CASE("refusals carry server codes and five-character SQLSTATEs, and read back from an ERR packet") {
  for (int i = 0; i <= kLast; ++i) {
    auto r = static_cast<Refusal>(i);
    const auto& row = refusal_row(r);
    CAPTURE(row.text);
    CHECK_FALSE(my::er::client_range(row.code));
    CHECK(std::string(row.sqlstate).size() == 5);
    std::string p;
    my::build_err(p, row.code, row.sqlstate, format_with(r, row.args));
    my::Err e;
    REQUIRE(my::parse_err(my::as_bytes(p), e));
    CHECK(e.code == row.code);
    CHECK(e.sqlstate == row.sqlstate);
    CHECK(e.message == format_with(r, row.args));
  }
}

TEST_CASE("the refusals that end a session are the handshake's, malformed packets and KILL") {
  CHECK(refusal_row(Refusal::BadHandshake).ends_session);
  CHECK(refusal_row(Refusal::AccessDenied).ends_session);
  CHECK(refusal_row(Refusal::EmptyCommand).ends_session);
  CHECK(refusal_row(Refusal::KilledSelf).ends_session);
  CHECK_FALSE(refusal_row(Refusal::UnknownCommand).ends_session);
  CHECK_FALSE(refusal_row(Refusal::UnknownStatement).ends_session);
  CHECK_FALSE(refusal_row(Refusal::ServerLost).ends_session);
  CHECK_FALSE(refusal_row(Refusal::LostBeforeRunning).ends_session);
}

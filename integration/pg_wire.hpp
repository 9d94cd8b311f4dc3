// Raw PostgreSQL protocol for the differential wire tests: message builders, and a scripted
// exchange (send bytes, read whole messages until a condition) run on a libpq-logged-in socket.
// Normalizes only what legitimately differs between a direct connection and one through Sluice:
// the notifying backend's pid in NotificationResponse, and the server source location fields
// (F, L, R) of errors and notices, which errors Sluice gives for the server lack.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace sluice::itest::pgw {

void put_u32(std::string& out, std::uint32_t v);
void put_u16(std::string& out, std::uint16_t v);
std::string msg(char type, const std::string& body);
std::string cstr(const std::string& s);
std::string query(const std::string& sql);
std::string parse(const std::string& sql, const std::string& name = "", std::vector<std::uint32_t> types = {});
// Bind with text parameters (empty optional = NULL is not needed here) and result format codes.
std::string bind(const std::string& portal = "", const std::string& stmt = "",
                 const std::vector<std::string>& params = {}, std::vector<std::uint16_t> result_formats = {});
std::string describe_portal(const std::string& portal = "");
std::string describe_statement(const std::string& stmt = "");
std::string execute(const std::string& portal = "", std::uint32_t max_rows = 0);
std::string close_portal(const std::string& portal);
std::string close_statement(const std::string& stmt);
std::string sync_msg();
std::string flush();
std::string terminate();
std::string copy_data(const std::string& data);
std::string copy_done();
std::string copy_fail(const std::string& why);

using Messages = std::vector<std::pair<char, std::string>>;

// What ends a step's reading.
struct Until {
  enum Kind { Type, Closed, Quiet } kind = Type;
  char type = 'Z';
  int count = 1;
  int quiet_ms = 300;  // Quiet: nothing more for this long
};
inline Until until(char type, int count = 1) { return {Until::Type, type, count, 0}; }
inline Until until_closed() { return {Until::Closed, 0, 0, 0}; }
inline Until until_quiet(int ms = 300) { return {Until::Quiet, 0, 0, ms}; }

struct Step {
  std::string send;
  Until until;
  std::string side_sql;  // run first on a separate direct connection ({app} = this client's application_name)
  int sleep_ms = 0;      // waited before sending
};

// Runs `steps` on `fd`; `side` runs side SQL. Returns every message received, in order, with a
// ('#', "closed") entry where the server closed the connection. Fails the test (doctest) on a
// 10 s silence where a message was expected.
Messages run_steps(int fd, const std::vector<Step>& steps, const std::function<void(const std::string&)>& side);

// Legitimate differences removed (NotificationResponse pid; F, L, R fields).
void normalize(Messages& m);
std::string describe_difference(const Messages& got, const Messages& want);

}  // namespace sluice::itest::pgw

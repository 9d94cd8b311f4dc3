// Every error Sluice itself says to a MySQL client, in one table: the code, SQLSTATE and text the
// client reads, and whether its connection ends with it (as the server's own would). Errors a
// server sent are relayed as they came; a lease failure is said as on PostgreSQL
// (frontend/common/lease_failure); a server connection lost under a command uses the wording
// both protocols share (frontend/common/server_loss) through ServerLost.
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <string>

namespace sluice::frontend::mysql {

enum class Refusal : std::uint8_t {
  // The client's connection ends.
  TooManyClients,       // max_client_conn, before the greeting
  BadHandshake,         // a handshake response that does not parse, or bytes after SSLRequest
  TlsNotOffered,        // SSLRequest on a listener without TLS
  TlsRequired,          // tls.mode = "require" and a plaintext handshake
  AccessDenied,         // user, address, "YES"/"NO"
  CertWrongUser,        // user, address, "YES"/"NO"
  CertRequired,         // user, address, "YES"/"NO"
  ConsoleDenied,        // user, address
  HostNotAllowed,       // address ([[access]], decided by the address before the greeting)
  AccessRuleRefused,    // address, what the rule refused (access::refusal_text)
  UserConnections,      // user ([limits] max_connections_per_user, or the user's max_connections)
  DatabaseConnections,  // limit, database
  AddressConnections,   // address, limit (before the greeting)
  ConnectionRate,       // address, limit (before the greeting)
  UnknownDatabase,      // database
  DatabaseDisabled,     // database
  PacketTooLarge,       // a packet over general.max_packet_size
  EmptyCommand,         // a command packet with no command byte
  MalformedExecute,     // COM_STMT_EXECUTE that does not parse
  MalformedChangeUser,  // COM_CHANGE_USER that does not parse
  KilledSelf,           // KILL of its own connection
  KilledByAdmin,        // the console's KILL
  // The client stays.
  QueryRate,          // user or address, which limit, its value ([limits] queries_per_second_*)
  FirewallDenied,     // why ([firewall])
  UnknownCommand,     // a command byte Sluice does not relay, or COM_SET_OPTION's unknown option
  UnknownStatement,   // statement id, command name
  NoOpenCursor,       // statement id
  TooManyStatements,  // max_client_prepared_statements
  NoSuchThread,       // id
  NotThreadOwner,     // id
  KillNotDelivered,   // why
  LostBeforeRunning,  // the server connection died before the statement ran
  ServerLost,         // loss_text(...)
};

struct RefusalRow {
  Refusal refusal;
  std::uint16_t code;
  const char* sqlstate;
  const char* text;  // fmt format; `args` placeholders
  std::uint8_t args;
  bool ends_session;
};

const RefusalRow& refusal_row(Refusal r);

template <class... A>
std::string refusal_text(Refusal r, const A&... args) {
  return fmt::format(fmt::runtime(refusal_row(r).text), args...);
}

}  // namespace sluice::frontend::mysql

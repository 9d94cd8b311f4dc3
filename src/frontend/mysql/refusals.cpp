// The table of refusals.hpp. Codes are the server's for the same situation (1043 bad handshake,
// 1045 access denied, 1049 unknown database, 1153 packet too large, 1243 unknown statement...),
// never one of the client library's own (2000-2999), which clients reject as malformed.
#include "src/frontend/mysql/refusals.hpp"

#include <array>

#include "protocols/mysql/codec.hpp"

namespace sluice::frontend::mysql {

namespace {

using R = Refusal;
namespace er = my::er;

constexpr std::array kRows{
    RefusalRow{R::TooManyClients, er::CON_COUNT, "08004", "Too many connections (max_client_conn)", 0, true},
    RefusalRow{R::BadHandshake, er::HANDSHAKE, "08S01", "Bad handshake", 0, true},
    RefusalRow{R::TlsNotOffered, er::HANDSHAKE, "08S01", "Sluice does not offer TLS on this listener", 0, true},
    RefusalRow{R::TlsRequired, 3159, "HY000",
               "Connections using insecure transport are prohibited: Sluice requires TLS on this listener "
               "(--ssl-mode=REQUIRED or stronger)",
               0, true},
    RefusalRow{R::AccessDenied, er::ACCESS_DENIED, "28000", "Access denied for user '{}'@'{}' (using password: {})", 3,
               true},
    RefusalRow{R::CertWrongUser, er::ACCESS_DENIED, "28000",
               "Access denied for user '{}'@'{}' (using password: {}) (client certificate is for another user)", 3,
               true},
    RefusalRow{R::CertRequired, er::ACCESS_DENIED, "28000",
               "Access denied for user '{}'@'{}' (using password: {}) (a valid client certificate is required)", 3,
               true},
    RefusalRow{R::ConsoleDenied, 1044, "42000", "Access denied for user '{}'@'{}' to database 'sluice'", 2, true},
    RefusalRow{R::HostNotAllowed, 1130, "HY000", "Host '{}' is not allowed to connect to this server", 1, true},
    RefusalRow{R::AccessRuleRefused, 1130, "HY000", "Host '{}' is not allowed to connect to this server ({})", 2, true},
    RefusalRow{R::UserConnections, 1203, "42000",
               "User {} already has more than 'max_user_connections' active connections", 1, true},
    RefusalRow{R::DatabaseConnections, er::CON_COUNT, "08004",
               "Too many connections (limits.max_connections_per_database = {} for database '{}')", 2, true},
    RefusalRow{R::AddressConnections, er::CON_COUNT, "08004",
               "Too many connections from '{}' (limits.max_connections_per_address = {})", 2, true},
    RefusalRow{R::ConnectionRate, er::CON_COUNT, "08004",
               "Too many new connections from '{}' (limits.connections_per_second_per_address = {}); try again", 2,
               true},
    RefusalRow{R::UnknownDatabase, er::BAD_DB, "42000", "Unknown database '{}'", 1, true},
    RefusalRow{R::DatabaseDisabled, 1105, "HY000",
               "Sluice: database '{}' is disabled by an administrator (ENABLE on the admin console)", 1, true},
    RefusalRow{R::PacketTooLarge, er::NET_PACKET_TOO_LARGE, "08S01", "Got a packet bigger than 'max_packet_size' bytes",
               0, true},
    RefusalRow{R::EmptyCommand, er::MALFORMED, "HY000", "Malformed communication packet (empty command)", 0, true},
    RefusalRow{R::MalformedExecute, er::MALFORMED, "HY000", "Malformed communication packet (COM_STMT_EXECUTE)", 0,
               true},
    RefusalRow{R::MalformedChangeUser, er::MALFORMED, "HY000", "Malformed communication packet (COM_CHANGE_USER)", 0,
               true},
    RefusalRow{R::KilledSelf, 1927, "70100", "Connection was killed", 0, true},
    RefusalRow{R::KilledByAdmin, 1927, "70100", "Connection was killed by the administrator (KILL)", 0, true},
    RefusalRow{R::QueryRate, 1226, "42000", "User '{}' has exceeded the '{}' resource (current value: {}); try again",
               3, false},
    RefusalRow{R::FirewallDenied, 1142, "42000", "{}", 1, false},
    RefusalRow{R::UnknownCommand, er::UNKNOWN_COM, "08S01", "Unknown command", 0, false},
    RefusalRow{R::UnknownStatement, er::UNKNOWN_STMT_HANDLER, "HY000",
               "Unknown prepared statement handler ({}) given to {}", 2, false},
    RefusalRow{R::NoOpenCursor, 1421, "HY000", "The statement ({}) has no open cursor", 1, false},
    RefusalRow{R::TooManyStatements, 1461, "42000",
               "Can't create more than max_client_prepared_statements statements (current value: {})", 1, false},
    RefusalRow{R::NoSuchThread, er::NO_SUCH_THREAD, "HY000", "Unknown thread id: {}", 1, false},
    RefusalRow{R::NotThreadOwner, er::KILL_DENIED, "HY000", "You are not owner of thread {}", 1, false},
    RefusalRow{R::KillNotDelivered, er::KILL_DENIED, "HY000", "Sluice could not deliver the KILL: {}", 1, false},
    RefusalRow{R::LostBeforeRunning, er::QUERY_INTERRUPTED, "70100",
               "Sluice lost its server connection before running this statement; nothing was changed, run it again", 0,
               false},
    RefusalRow{R::ServerLost, er::QUERY_INTERRUPTED, "70100", "Sluice: {}", 1, false},
};

constexpr bool in_order() {
  for (std::size_t i = 0; i < kRows.size(); ++i)
    if (static_cast<std::size_t>(kRows[i].refusal) != i) return false;
  return true;
}
static_assert(in_order(), "kRows lists every Refusal once, in declaration order");
static_assert(kRows.size() == static_cast<std::size_t>(Refusal::ServerLost) + 1);

}  // namespace

const RefusalRow& refusal_row(Refusal r) { return kRows[static_cast<std::size_t>(r)]; }

}  // namespace sluice::frontend::mysql

// The running state's configuration part: a Snapshot is the configuration and everything built
// from it (credentials, TLS contexts), always built whole by build_snapshot and replaced whole on
// reload; pool_settings derives one pool's settings from it.
#pragma once

#include <boost/asio/ssl.hpp>

#include <map>
#include <memory>
#include <string>

#include "src/access/firewall.hpp"
#include "src/access/query_rules.hpp"
#include "src/access/rules.hpp"
#include "src/config/config.hpp"
#include "src/pool/credentials.hpp"
#include "src/pool/pool.hpp"

namespace sluice::state {

// Whether building a snapshot reads the certificate and key files again (RELOAD, SIGHUP, start)
// or keeps the running snapshot's TLS contexts where their settings did not change (SET, which
// cannot change them).
enum class FileReads { Reread, KeepUnchanged };

class Snapshot;

// The one way to build the running state. `running` (null at start) lends what did not change:
// users whose entry is the same keep their credentials object (and what it learned, e.g. a SCRAM
// ClientKey recovered from a client's proof); with KeepUnchanged, TLS contexts whose settings are
// the same are kept too. Throws config::ConfigError on bad secrets or unreadable TLS files.
std::shared_ptr<const Snapshot> build_snapshot(std::shared_ptr<const config::Config> cfg, const Snapshot* running,
                                               FileReads files);

// The running state: the configuration and everything built from it (credentials, the
// listeners' TLS contexts and channel-binding data, the servers' TLS settings). Only
// build_snapshot() makes one, always whole: a snapshot with a config but without the TLS it
// describes cannot be constructed (the console's SET once did that and turned TLS off).
class Snapshot {
  struct Key {
    explicit Key() = default;
  };
  friend std::shared_ptr<const Snapshot> build_snapshot(std::shared_ptr<const config::Config>, const Snapshot*,
                                                        FileReads);

 public:
  explicit Snapshot(Key) {}
  Snapshot(const Snapshot&) = delete;
  Snapshot& operator=(const Snapshot&) = delete;

  std::shared_ptr<const config::Config> config;
  std::map<std::string, std::shared_ptr<const pool::Credentials>, std::less<>> credentials;
  // TLS for the PostgreSQL listener (null = tls "disable"); certificates are read when the
  // snapshot is built, so a reload picks up new ones for new connections.
  std::shared_ptr<boost::asio::ssl::context> pg_tls;
  std::string pg_tls_end_point;                       // tls-server-end-point channel binding data
  std::shared_ptr<boost::asio::ssl::context> my_tls;  // the MySQL listener's
  pool::ServerTlsMap server_tls;
  std::shared_ptr<const access::Rules> access;  // [[access]], never null
  std::shared_ptr<const access::FirewallRules> firewall;  // [[firewall.rules]], never null
  std::shared_ptr<const access::QueryRules> rules;        // [[rules]], never null
};

pool::PoolSettings pool_settings(const Snapshot& snap, const config::Pool& p);

}  // namespace sluice::state

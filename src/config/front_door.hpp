// Reading the front door's configuration (front_door.cpp): listener addresses, the PROXY
// protocol's trusted peers, and the [[access]] rules. Internal to src/config.
#pragma once

#include "src/config/section.hpp"

namespace sluice::config {

// `listen`: "host:port", or a list of them (the first is `first`, the others `more`).
void read_listen(Section& s, Endpoint& first, std::vector<Endpoint>& more);
// unix_socket_mode ("0770"), unix_socket_group and unix_socket_owner, for a `listen` path.
void read_unix_socket(Section& s, UnixSocketOptions& out);
// proxy_protocol_trusted = [CIDRs], proxy_protocol_only = bool.
void read_listener_proxy(Section& s, ListenerProxy& proxy);
// A list of CIDR strings under `key` (errors name the entry).
void read_cidrs(Section& s, std::string_view key, std::vector<Cidr>& out);
// [[access]] tables, after [[users]] (a "+group" must be some user's group).
void read_access(Section& root, Config& cfg, const std::string& file);
// [firewall] and its [[firewall.rules]].
void read_firewall(Section& root, Config& cfg, const std::string& file);

}  // namespace sluice::config

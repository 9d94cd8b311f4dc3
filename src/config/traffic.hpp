// Reading statement rules and traffic routing from the configuration (traffic.cpp): the matcher
// [[firewall.rules]] and [[rules]] share, [[rules]] with their actions, [[zones]], and a
// cluster's member `tags`. Internal to src/config.
#pragma once

#include "src/config/section.hpp"

namespace sluice::config {

// What every rule list matches a client by ([[access]], [[firewall.rules]], [[rules]]):
// protocol, user (names or "+group" of some [[users]] entry), database, address (CIDRs or "*").
void read_rule_who(Section& s, const Config& cfg, std::optional<Protocol>& protocol, std::vector<std::string>& users,
                   std::vector<std::string>& databases, std::vector<Cidr>& addresses);
// The match keys of a statement rule: protocol, user, database, application, address, kinds,
// tables, match, fingerprint, days / hours / time_zone.
void read_statement_match(Section& s, const Config& cfg, StatementMatch& m);
// A string or a list of strings; "*" or "all" (alone) means any, stored as an empty list.
void read_names(Section& s, std::string_view key, std::vector<std::string>& out);
// [[rules]] (after [[users]] and the clusters: tags are checked against the members').
void read_rules(Section& root, Config& cfg, const std::string& file);
// [[zones]].
void read_zones(Section& root, Config& cfg, const std::string& file);
// A cluster's `tags = { "host:port" = { zone = "eu-1" } }`, after its members.
void read_member_tags(Section& s, Cluster& c);
// A pool's `split = { blue = 90, green = 10 }` (after the clusters): the arms, their turn order,
// and `cluster` set to the first arm.
void read_split(Section& s, const Config& cfg, Pool& p);

}  // namespace sluice::config

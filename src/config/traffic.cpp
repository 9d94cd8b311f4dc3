// Statement rules, [[rules]], [[zones]] and member tags (traffic.hpp).
#include "src/config/traffic.hpp"

#include <fmt/ranges.h>
#include <re2/re2.h>

#include "src/config/front_door.hpp"
#include "src/config/time_zone.hpp"

namespace sluice::config {
namespace {

constexpr std::string_view kDays[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

int day_index(std::string_view d) {
  for (int i = 0; i < 7; ++i)
    if (d == kDays[i]) return i;
  return -1;
}

// "mon", "mon-fri" (wrapping: "fri-mon"), or a list of them.
std::uint8_t read_days(Section& s) {
  auto n = s.get("days");
  if (!n) return 0x7f;
  std::uint8_t mask = 0;
  auto one = [&](const toml::node& e) {
    if (!e.is_string()) s.fail(&e, "days", "expected day names such as \"mon-fri\" or [\"sat\", \"sun\"]");
    std::string v = e.as_string()->get();
    for (auto& ch : v) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    auto dash = v.find('-');
    int a = day_index(std::string_view(v).substr(0, dash));
    int b = dash == std::string::npos ? a : day_index(std::string_view(v).substr(dash + 1));
    if (a < 0 || b < 0) s.fail(&e, "days", fmt::format("unknown day \"{}\" (sun, mon, tue, wed, thu, fri, sat)", v));
    for (int d = a;; d = (d + 1) % 7) {
      mask = static_cast<std::uint8_t>(mask | 1u << d);
      if (d == b) break;
    }
  };
  if (auto arr = n->as_array()) {
    if (arr->empty()) s.fail(n, "days", "an empty list matches no day");
    for (auto& e : *arr) one(e);
  } else {
    one(*n);
  }
  return mask;
}

// "HH:MM"; 24:00 is allowed as an end.
int read_clock(Section& s, const toml::node* n, std::string_view text) {
  auto bad = [&] { s.fail(n, "hours", "expected \"HH:MM-HH:MM\" such as \"09:00-17:30\" or \"22:00-06:00\""); };
  if (text.size() != 5 || text[2] != ':') bad();
  for (std::size_t i : {0u, 1u, 3u, 4u})
    if (text[i] < '0' || text[i] > '9') bad();
  int h = (text[0] - '0') * 10 + (text[1] - '0'), m = (text[3] - '0') * 10 + (text[4] - '0');
  if (m > 59 || h > 24 || (h == 24 && m != 0)) bad();
  return h * 60 + m;
}

void read_window(Section& s, StatementMatch& m) {
  bool has = s.table().contains("days") || s.table().contains("hours") || s.table().contains("time_zone");
  if (!has) return;
  TimeWindow w;
  w.days = read_days(s);
  if (auto n = s.get("hours")) {
    if (!n->is_string()) s.fail(n, "hours", "expected \"HH:MM-HH:MM\"");
    std::string v = n->as_string()->get();
    auto dash = v.find('-');
    if (dash == std::string::npos) s.fail(n, "hours", "expected \"HH:MM-HH:MM\"");
    w.from_minute = read_clock(s, n, std::string_view(v).substr(0, dash));
    w.to_minute = read_clock(s, n, std::string_view(v).substr(dash + 1));
    if (w.from_minute == 24 * 60) s.fail(n, "hours", "a window cannot start at 24:00");
    if (w.from_minute == w.to_minute) s.fail(n, "hours", "an empty window (start and end are equal)");
  }
  s.str("time_zone", w.time_zone);
  std::string error;
  w.zone = TimeZone::load(w.time_zone, error);
  if (!w.zone) s.fail(s.get("time_zone"), "time_zone", error);
  std::vector<std::string> days;
  for (int d = 0; d < 7; ++d)
    if (w.days >> d & 1) days.emplace_back(kDays[d]);
  w.text = fmt::format("{} {:02}:{:02}-{:02}:{:02} {}",
                       w.days == 0x7f ? std::string("daily") : fmt::format("{}", fmt::join(days, ",")),
                       w.from_minute / 60, w.from_minute % 60, w.to_minute / 60, w.to_minute % 60, w.time_zone);
  m.window = std::move(w);
}

}  // namespace

void read_names(Section& s, std::string_view key, std::vector<std::string>& out) {
  auto n = s.get(key);
  if (!n) return;
  out.clear();
  auto one = [&](const toml::node& e) {
    if (!e.is_string() || e.as_string()->get().empty()) s.fail(&e, key, "expected a name, a list of names, or \"*\"");
    out.push_back(e.as_string()->get());
  };
  if (auto arr = n->as_array()) {
    if (arr->empty()) s.fail(n, key, "an empty list matches nothing: use \"*\" for any");
    for (auto& e : *arr) one(e);
  } else {
    one(*n);
  }
  bool any = false;
  for (auto& v : out) any = any || v == "*" || v == "all";
  if (any && out.size() > 1) s.fail(n, key, "\"*\" (any) cannot be listed with names");
  if (any) out.clear();
}

void read_rule_who(Section& s, const Config& cfg, std::optional<Protocol>& protocol, std::vector<std::string>& users,
                   std::vector<std::string>& databases, std::vector<Cidr>& addresses) {
  if (s.get("protocol")) {
    std::string p;
    s.choice("protocol", p,
             {{"postgres", std::string("postgres")}, {"mysql", std::string("mysql")}, {"*", std::string("*")}});
    if (p != "*") protocol = p == "postgres" ? Protocol::Postgres : Protocol::Mysql;
  }
  read_names(s, "user", users);
  for (auto& u : users) {
    if (u.size() < 2 || u[0] != '+') continue;
    bool known = false;
    for (auto& usr : cfg.users)
      for (auto& g : usr.groups) known = known || g == std::string_view(u).substr(1);
    if (!known) s.fail(s.get("user"), "user", fmt::format("no [[users]] entry is in group \"{}\"", u.substr(1)));
  }
  read_names(s, "database", databases);
  if (auto a = s.get("address");
      !(a && a->is_string() && (a->as_string()->get() == "*" || a->as_string()->get() == "all")))
    read_cidrs(s, "address", addresses);
}

void read_statement_match(Section& s, const Config& cfg, StatementMatch& m) {
  read_rule_who(s, cfg, m.protocol, m.users, m.databases, m.addresses);
  read_names(s, "application", m.applications);
  s.strings("kinds", m.kinds);
  for (auto& k : m.kinds)
    for (auto& ch : k) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  s.strings("tables", m.tables);
  s.str("match", m.pattern);
  if (!m.pattern.empty()) {
    re2::RE2 re(m.pattern, re2::RE2::Quiet);
    if (!re.ok())
      s.fail(s.get("match"), "match", fmt::format("invalid regular expression (RE2 syntax): {}", re.error()));
  }
  s.str("fingerprint", m.fingerprint);
  read_window(s, m);
}

std::string StatementMatch::describe() const {
  std::vector<std::string> what;
  if (protocol) what.push_back(fmt::format("protocol={}", to_string(*protocol)));
  if (!users.empty()) what.push_back(fmt::format("user={}", fmt::join(users, ",")));
  if (!databases.empty()) what.push_back(fmt::format("database={}", fmt::join(databases, ",")));
  if (!applications.empty()) what.push_back(fmt::format("application={}", fmt::join(applications, ",")));
  if (!addresses.empty()) {
    std::string a;
    for (auto& c : addresses) a += (a.empty() ? "" : ",") + c.text;
    what.push_back("address=" + a);
  }
  if (!kinds.empty()) what.push_back(fmt::format("kinds={}", fmt::join(kinds, ",")));
  if (!tables.empty()) what.push_back(fmt::format("tables={}", fmt::join(tables, ",")));
  if (!pattern.empty()) what.push_back("match=" + pattern);
  if (!fingerprint.empty()) what.push_back("fingerprint=" + fingerprint);
  if (window) what.push_back("when=" + window->text);
  return fmt::format("{}", fmt::join(what, " "));
}

std::string StatementMatch::key() const {
  std::string a;
  for (auto& c : addresses) a += c.text + ",";
  return fmt::format("{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}", protocol ? to_string(*protocol) : "*", fmt::join(users, ","),
                     fmt::join(databases, ","), fmt::join(applications, ","), a, fmt::join(kinds, ","),
                     fmt::join(tables, ","), pattern, fingerprint, window ? window->text : "", "");
}

void read_member_tags(Section& s, Cluster& c) {
  c.member_tags.assign(c.replicas.size() + 1, {});
  auto n = s.get("tags");
  if (!n) return;
  auto t = n->as_table();
  if (!t) s.fail(n, "tags", "expected a table: \"host:port\" = { zone = \"eu-1\" }");
  for (auto&& [k, v] : *t) {
    std::string member(k.str());
    std::size_t i = 0;
    for (; i <= c.replicas.size(); ++i)
      if ((i == 0 ? c.primary : c.replicas[i - 1]).text() == member) break;
    if (i > c.replicas.size())
      s.fail(&v, "tags",
             fmt::format("\"{}\" is not a member (the primary or one of the replicas, as written)", member));
    auto tags = v.as_table();
    if (!tags) s.fail(&v, "tags", "expected a table of tags such as { zone = \"eu-1\", tier = \"analytics\" }");
    for (auto&& [tk, tv] : *tags) {
      if (!tv.is_string()) s.fail(&tv, "tags", fmt::format("tag \"{}\": expected a string value", tk.str()));
      c.member_tags[i][std::string(tk.str())] = tv.as_string()->get();
    }
  }
}

void read_split(Section& s, const Config& cfg, Pool& p) {
  auto n = s.get("split");
  auto t = n->as_table();
  if (!t || t->size() < 2) s.fail(n, "split", "expected two or more clusters with weights: { blue = 90, green = 10 }");
  std::uint64_t total = 0;
  std::optional<Protocol> protocol;
  for (auto&& [k, v] : *t) {
    std::string arm(k.str());
    auto c = cfg.clusters.find(arm);
    if (c == cfg.clusters.end()) s.fail(&v, "split", fmt::format("no [clusters.{}] is defined", arm));
    if (protocol && c->second.protocol != *protocol) s.fail(&v, "split", "the clusters of a split speak one protocol");
    protocol = c->second.protocol;
    if (!v.is_integer() || v.as_integer()->get() < 0 || v.as_integer()->get() > 10'000)
      s.fail(&v, "split", fmt::format("{}: expected a weight between 0 and 10000", arm));
    p.split.emplace_back(arm, static_cast<std::uint32_t>(v.as_integer()->get()));
    total += p.split.back().second;
  }
  if (total == 0) s.fail(n, "split", "every weight is 0: no client could be placed");
  // Smooth weighted round robin over one turn (as nginx's upstream balancing): each arm's share
  // of any run of new clients stays within one of its weight's proportion.
  std::vector<std::int64_t> current(p.split.size(), 0);
  for (std::uint64_t i = 0; i < total; ++i) {
    std::size_t best = 0;
    for (std::size_t a = 0; a < p.split.size(); ++a) {
      current[a] += p.split[a].second;
      if (current[a] > current[best]) best = a;
    }
    current[best] -= static_cast<std::int64_t>(total);
    p.cycle.push_back(static_cast<std::uint16_t>(best));
  }
  p.cluster = p.split.front().first;
}

void read_zones(Section& root, Config& cfg, const std::string& file) {
  auto n = root.get("zones");
  if (!n) return;
  auto arr = n->as_array();
  if (!arr || !arr->is_array_of_tables()) root.fail(n, "zones", "expected [[zones]] tables");
  std::size_t i = 0;
  for (auto& e : *arr) {
    Section s(*e.as_table(), fmt::format("zones[{}].", i++), file);
    Zone z;
    s.str_required("name", z.name);
    if (z.name.empty()) s.fail(s.get("name"), "name", "must not be empty");
    if (!e.as_table()->contains("addresses")) s.fail(nullptr, "addresses", "is required (CIDR blocks)");
    read_cidrs(s, "addresses", z.addresses);
    s.finish();
    cfg.zones.push_back(std::move(z));
  }
}

void read_rules(Section& root, Config& cfg, const std::string& file) {
  auto n = root.get("rules");
  if (!n) return;
  auto arr = n->as_array();
  if (!arr || !arr->is_array_of_tables()) root.fail(n, "rules", "expected [[rules]] tables");
  std::size_t i = 0;
  for (auto& e : *arr) {
    Section s(*e.as_table(), fmt::format("rules[{}].", i++), file);
    QueryRule r;
    r.line = static_cast<int>(e.source().begin.line);
    s.str("name", r.name);
    if (r.name.empty()) r.name = fmt::format("rule {}", i);
    for (auto& other : cfg.rules)
      if (other.name == r.name) s.fail(s.get("name"), "name", fmt::format("rule \"{}\" is already defined", r.name));
    read_statement_match(s, cfg, r.on);
    s.boolean("continue", r.next);
    s.choice("route", r.route,
             {{"primary", RouteTo::Primary}, {"replica", RouteTo::Replica}, {"default", RouteTo::Default}});
    if (auto t = s.get("route_tags")) {
      auto tt = t->as_table();
      if (!tt || tt->empty()) s.fail(t, "route_tags", "expected a table of tags such as { tier = \"analytics\" }");
      for (auto&& [k, v] : *tt) {
        if (!v.is_string()) s.fail(&v, "route_tags", fmt::format("tag \"{}\": expected a string value", k.str()));
        bool exists = false;
        for (auto& [name, c] : cfg.clusters)
          for (auto& mt : c.member_tags) {
            auto it = mt.find(std::string(k.str()));
            exists = exists || (it != mt.end() && it->second == v.as_string()->get());
          }
        if (!exists)
          s.fail(&v, "route_tags",
                 fmt::format("no cluster member has the tag {} = \"{}\" (clusters' `tags`)", k.str(),
                             v.as_string()->get()));
        r.route_tags.emplace_back(std::string(k.str()), v.as_string()->get());
      }
    }
    if (s.table().contains("cache")) {
      bool c = true;
      s.boolean("cache", c);
      r.cache = c;
    }
    s.duration("cache_ttl", r.cache_ttl);
    if (s.table().contains("cache_ttl")) {
      if (r.cache == false) s.fail(s.get("cache_ttl"), "cache_ttl", "conflicts with cache = false");
      r.cache = true;
    }
    std::string action;
    s.choice("action", action, {{"deny", std::string("deny")}, {"allow", std::string("allow")}});
    r.deny = action == "deny";
    s.str("message", r.message);
    if (!r.message.empty() && !r.deny) s.fail(s.get("message"), "message", "goes with action = \"deny\"");
    s.str("replace_match", r.replace_match);
    s.str("replace_with", r.replace_with);
    if (r.replace_match.empty() != !s.table().contains("replace_with"))
      s.fail(s.get(r.replace_match.empty() ? "replace_with" : "replace_match"), "replace_match",
             "replace_match and replace_with go together");
    if (!r.replace_match.empty()) {
      re2::RE2 re(r.replace_match, re2::RE2::Quiet);
      if (!re.ok())
        s.fail(s.get("replace_match"), "replace_match",
               fmt::format("invalid regular expression (RE2 syntax): {}", re.error()));
      std::string why;
      if (!re.CheckRewriteString(r.replace_with, &why)) s.fail(s.get("replace_with"), "replace_with", why);
    }
    s.duration("statement_timeout", r.statement_timeout);
    s.str("tag", r.tag);
    s.str("mirror", r.mirror);
    if (!r.mirror.empty() && !cfg.clusters.count(r.mirror))
      s.fail(s.get("mirror"), "mirror", fmt::format("no [clusters.{}] is defined", r.mirror));
    s.boolean("mirror_writes", r.mirror_writes);
    s.str("cluster", r.cluster);
    if (!r.cluster.empty()) {
      auto c = cfg.clusters.find(r.cluster);
      if (c == cfg.clusters.end())
        s.fail(s.get("cluster"), "cluster", fmt::format("no [clusters.{}] is defined", r.cluster));
      if (r.route != RouteTo::Default || !r.route_tags.empty())
        s.fail(s.get("cluster"), "cluster", "a rule sends statements to another cluster or routes them in their own");
      // Each pool of the cluster's protocol gets a copy on it, for the statements sent there.
      for (auto& p : cfg.pools)
        if (p.protocol == c->second.protocol && p.cluster != r.cluster && !p.on_rule_cluster(r.cluster)) {
          Pool a = p;
          a.cluster = r.cluster;
          a.split.clear(), a.arms.clear(), a.cycle.clear(), a.rule_arms.clear();
          p.rule_arms.push_back(std::move(a));
        }
    }
    if (r.mirror_writes && r.mirror.empty()) s.fail(s.get("mirror_writes"), "mirror_writes", "goes with mirror");
    bool acts = r.route != RouteTo::Default || !r.route_tags.empty() || r.cache || r.deny || !r.replace_match.empty() ||
                r.statement_timeout.count() > 0 || !r.tag.empty() || action == "allow" || !r.mirror.empty() ||
                !r.cluster.empty();
    if (!acts)
      s.fail(nullptr, "action",
             "the rule does nothing: give it route, route_tags, cache, cache_ttl, action (\"deny\" or \"allow\": "
             "stop here), replace_match, statement_timeout or tag");
    s.finish();
    cfg.rules.push_back(std::move(r));
  }
}

}  // namespace sluice::config

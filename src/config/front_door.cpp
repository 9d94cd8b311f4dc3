// The front door's configuration (front_door.hpp).
#include "src/config/front_door.hpp"

#include "src/config/traffic.hpp"

#include <re2/re2.h>

#include <charconv>

namespace sluice::config {

void read_listen(Section& s, Endpoint& first, std::vector<Endpoint>& more) {
  auto n = s.get("listen");
  if (!n) return;
  more.clear();
  if (auto arr = n->as_array()) {
    if (arr->empty()) s.fail(n, "listen", "expected at least one \"host:port\"");
    for (std::size_t i = 0; i < arr->size(); ++i) {
      Endpoint e = s.endpoint_of(arr->get(i), "listen");
      for (auto& seen : more)
        if (seen == e) s.fail(arr->get(i), "listen", fmt::format("\"{}\" is listed twice", e.text()));
      if (i == 0) first = e;
      else if (e == first) s.fail(arr->get(i), "listen", fmt::format("\"{}\" is listed twice", e.text()));
      else more.push_back(e);
    }
    return;
  }
  first = s.endpoint_of(n, "listen");
}

void read_unix_socket(Section& s, UnixSocketOptions& out) {
  if (auto n = s.get("unix_socket_mode")) {
    if (!n->is_string()) s.fail(n, "unix_socket_mode", "expected an octal mode such as \"0770\"");
    const std::string text = n->as_string()->get();
    unsigned mode = 0;
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), mode, 8);
    if (text.empty() || ec != std::errc() || p != text.data() + text.size() || mode > 0777)
      s.fail(n, "unix_socket_mode", fmt::format("\"{}\" is not an octal mode from 0000 to 0777", text));
    out.mode = mode;
  }
  s.str("unix_socket_group", out.group);
  s.str("unix_socket_owner", out.owner);
}

void read_cidrs(Section& s, std::string_view key, std::vector<Cidr>& out) {
  auto n = s.get(key);
  if (!n) return;
  auto one = [&](const toml::node& e) {
    if (!e.is_string()) s.fail(&e, key, "expected CIDR blocks such as \"10.0.0.0/8\" or \"::1\"");
    std::string error;
    auto c = Cidr::parse(e.as_string()->get(), error);
    if (!c) s.fail(&e, key, error);
    out.push_back(std::move(*c));
  };
  out.clear();
  if (auto arr = n->as_array()) {
    for (auto& e : *arr) one(e);
  } else {
    one(*n);
  }
}

void read_listener_proxy(Section& s, ListenerProxy& proxy) {
  read_cidrs(s, "proxy_protocol_trusted", proxy.trusted);
  s.boolean("proxy_protocol_only", proxy.only);
  if (proxy.only && proxy.trusted.empty())
    s.fail(s.get("proxy_protocol_only"), "proxy_protocol_only",
           "needs proxy_protocol_trusted (the load balancers' addresses)");
}

void read_access(Section& root, Config& cfg, const std::string& file) {
  auto n = root.get("access");
  if (!n) return;
  auto arr = n->as_array();
  if (!arr || !arr->is_array_of_tables()) root.fail(n, "access", "expected [[access]] tables");
  std::size_t i = 0;
  for (auto& e : *arr) {
    Section s(*e.as_table(), fmt::format("access[{}].", i++), file);
    AccessRule r;
    r.line = static_cast<int>(e.source().begin.line);
    s.str("name", r.name);
    if (r.name.empty()) r.name = fmt::format("rule {}", i);
    read_rule_who(s, cfg, r.protocol, r.users, r.databases, r.addresses);
    s.choice("tls", r.tls,
             {{"any", AccessTls::Any}, {"required", AccessTls::Required}, {"forbidden", AccessTls::Forbidden}});
    std::string action = "allow";
    s.choice("action", action, {{"allow", std::string("allow")}, {"reject", std::string("reject")}});
    if (!e.as_table()->contains("action")) s.fail(nullptr, "action", "is required (\"allow\" or \"reject\")");
    r.allow = action == "allow";
    if (s.get("auth")) {
      if (!r.allow) s.fail(s.get("auth"), "auth", "only an allow rule names an auth method");
      AuthMethod m{};
      s.choice("auth", m,
               {{"scram-sha-256", AuthMethod::ScramSha256},
                {"md5", AuthMethod::Md5},
                {"password", AuthMethod::Password},
                {"trust", AuthMethod::Trust},
                {"cert", AuthMethod::Cert}});
      r.auth = m;
    }
    s.finish();
    cfg.access.push_back(std::move(r));
  }
}

void read_firewall(Section& root, Config& cfg, const std::string& file) {
  auto t = sub_table(root, "firewall");
  if (!t) return;
  Section s(*t, "firewall.", file);
  for (auto& st : live_settings())
    if (st.section == "firewall") s.setting(st, cfg);
  s.str("allowlist_file", cfg.firewall.allowlist_file);
  if (cfg.firewall.mode != "off" && cfg.firewall.allowlist_file.empty())
    s.fail(s.get("mode"), "allowlist_file", "is required for the learning and enforcing modes");
  cfg.firewall.allowlist_file = resolve_path(cfg.firewall.allowlist_file, file);
  if (auto n = s.get("rules")) {
    auto arr = n->as_array();
    if (!arr || !arr->is_array_of_tables()) s.fail(n, "rules", "expected [[firewall.rules]] tables");
    std::size_t i = 0;
    for (auto& e : *arr) {
      Section r(*e.as_table(), fmt::format("firewall.rules[{}].", i++), file);
      FirewallRule rule;
      rule.line = static_cast<int>(e.source().begin.line);
      r.str("name", rule.name);
      if (rule.name.empty()) rule.name = fmt::format("rule {}", i);
      read_statement_match(r, cfg, rule.on);
      std::string action;
      r.choice("action", action, {{"deny", std::string("deny")}, {"allow", std::string("allow")}});
      if (!e.as_table()->contains("action")) r.fail(nullptr, "action", "is required (\"deny\" or \"allow\")");
      rule.deny = action == "deny";
      r.finish();
      cfg.firewall.rules.push_back(std::move(rule));
    }
  }
  s.finish();
}

}  // namespace sluice::config

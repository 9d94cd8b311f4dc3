// PostgreSQL client session: the firewall and [[rules]] per statement, and its query digest. A statement is judged once
// however many steps look at it (the cache lookup, the route, forwarding), and each rule that
// matched it is counted once; forwarding applies a refusal (a failed statement, as the server
// would answer it), a rewrite (the message rebuilt with the new text) and a statement timeout
// (a CancelRequest when it runs too long).
#include "src/frontend/postgres/client_session.hpp"

namespace sluice::frontend::pg {

const StatementCheck& Session::statement_check(std::string_view text, bool consume, bool firewall) {
  auto& wk = w();
  if (rule_memo_ && text == wk.check_text_) {
    if (consume) rule_memo_ = false;
    return wk.check_;
  }
  wk.analysis_.of(text, sql::Dialect::Postgres);
  const std::string* app = relay_->client_params.find("application_name");
  access::StatementFacts f{config::Protocol::Postgres, user_, database_, app ? std::string_view(*app) : "",
                           info_->addr};
  wk.check_ = check_statement(ctx_, *snap_, f, info_->id, wk.analysis_, firewall);
  wk.rules_held_ = snap_->rules;  // what check_ points into, through a reload
  wk.check_text_.assign(text);
  rule_memo_ = !consume;
  return wk.check_;
}

bool Session::refused_by_rules(wire::Frame& f) {
  std::string_view text;
  wire::ParseView p;
  bool bind = false;
  if (f.type == wire::fe::Query) {
    wire::Reader r(f.body);
    text = r.cstr();
    if (!r.ok()) return false;  // malformed: the relay reports it
  } else if (f.type == wire::fe::Parse) {
    if (!wire::parse_parse(f.body, p)) return false;
    text = p.query;
    w().judged_parse_.assign(p.name);  // its Bind in this batch is not judged again
    parse_judged_ = true;
  } else {
    // A Bind of a statement prepared in an earlier batch: judged again by the rules (a time
    // window may have opened since; the firewall judged its Parse), not rewritten.
    wire::BindHead bh;
    if (!wire::parse_bind_head(f.body, bh) || (parse_judged_ && bh.statement == w().judged_parse_)) return false;
    const pool::Statement* st = relay_->find_statement(bh.statement);
    wire::Frame pf;
    auto bytes = st ? wire::as_bytes(st->parse_message) : wire::Bytes{};
    if (!st || wire::next_frame(bytes, bytes.size(), pf) != wire::Decode::Ok || !wire::parse_parse(pf.body, p))
      return false;
    text = p.query;
    bind = true;
  }
  const auto& c = statement_check(text, true, !bind);
  if (c.refusal) {
    std::string err;
    wire::error_response(err, "ERROR", "42501", *c.refusal);
    relay_->refuse(f, std::move(err), relay_->server_out);
    return true;
  }
  if (c.rules.statement_timeout.count() > 0) [[unlikely]]
    pending_timeout_ = c.rules.statement_timeout;
  std::string changed;
  if (c.rules.rewrite_rule >= 0 && !bind) {
    changed.assign(text);
    if (!snap_->rules->rewrite(c.rules.rewrite_rule, changed)) changed.clear();
  }
  if (!c.rules.mirror.empty() && f.type == wire::fe::Query) [[unlikely]]
    mirror_next(c.rules, changed.empty() ? text : std::string_view(changed));
  if (changed.empty()) return false;
  log::debug("client {}: rule {} rewrote the statement", info_->id, c.rules.rewrite_rule + 1);
  // The same message with the new text (Query: the text; Parse: name, text, parameter types).
  auto& out = w().rewritten_;
  out.clear();
  if (f.type == wire::fe::Query) wire::query(out, changed);
  else wire::parse_message(out, p.name, changed, p.param_types);
  wire::Frame nf;
  if (wire::next_frame(wire::as_bytes(out), out.size(), nf) != wire::Decode::Ok) return false;
  f = nf;
  return false;
}

void Session::name_digest(const wire::Frame& f) {
  // A request counts when it runs a statement: a Query, or a Bind (of the statement a Parse just
  // named, or of one prepared earlier); a Parse alone (PQprepare) does not, as on the server.
  auto& wk = w();
  auto digest_of = [&](std::string_view text) {
    auto& a = wk.analysis_;
    a.of(text, sql::Dialect::Postgres);
    return ctx_.digests.get("postgres", a.fingerprint(), database_, user_);
  };
  auto route = routing_.route.replica ? observe::DigestRoute::Replica : observe::DigestRoute::Primary;
  // Who runs it, for the slow-query log (the text only when it may be logged).
  auto who = [&](std::string_view text) {
    observe::SlowWho w;
    if (!observe::g_slow_log.on()) return w;
    w.client_id = info_->id;
    w.address = info_->addr;
    if (observe::g_slow_log.with_parameters()) w.statement.assign(text);
    return w;
  };
  if (f.type == wire::fe::Query) {
    wire::Reader r(f.body);
    std::string_view text = r.cstr();
    if (r.ok() && !relay_->digest_armed()) relay_->digest_next(digest_of(text), route, who(text));
    return;
  }
  if (f.type == wire::fe::Parse) {
    wire::ParseView p;
    if (!wire::parse_parse(f.body, p)) return;
    wk.parsed_digest_ = digest_of(p.query);
    wk.parsed_name_.assign(p.name);
    wk.parsed_text_.assign(observe::g_slow_log.with_parameters() ? p.query : std::string_view());
    return;
  }
  if (relay_->digest_armed()) return;  // the batch's first statement has it
  wire::BindHead bh;
  if (!wire::parse_bind_head(f.body, bh)) return;
  if (wk.parsed_digest_ && bh.statement == wk.parsed_name_ && ctx_.digests.current(*wk.parsed_digest_)) {
    relay_->digest_next(wk.parsed_digest_, route, who(wk.parsed_text_));
    return;
  }
  const pool::Statement* st = relay_->find_statement(bh.statement);
  wire::Frame pf;
  wire::ParseView p;
  auto bytes = st ? wire::as_bytes(st->parse_message) : wire::Bytes{};
  if (!st || wire::next_frame(bytes, bytes.size(), pf) != wire::Decode::Ok || !wire::parse_parse(pf.body, p)) return;
  relay_->digest_next(digest_of(p.query), route, who(p.query));
}

void Session::mirror_next(const access::RuleOutcome& r, std::string_view text) {
  auto mirror = ctx_.mirrors.find(r.mirror);
  if (!mirror || mirror->protocol() != config::Protocol::Postgres) return;
  auto& a = w().analysis_;
  a.of(text, sql::Dialect::Postgres);
  if (!r.mirror_writes && !a.classification().read()) return;  // reads only, unless asked
  router::MirrorCopy copy;
  copy.creds = creds_;
  copy.database = server_db_;
  copy.text.assign(text);
  copy.fingerprint = a.fingerprint();
  relay_->mirror_next(std::move(mirror), std::move(copy));
}

void Session::arm_statement_timeout() {
  auto d = std::exchange(pending_timeout_, config::Duration{0});
  if (!server_ || !server_->backend_pid) return;
  timeout_armed_ = true;
  auto& t = w().statement_timer_;
  t.expires_after(d);
  t.async_wait([this, alive = std::weak_ptr<bool>(alive_), pid = server_->backend_pid, key = server_->backend_key,
                ep = pool_->endpoint(), d](error_code ec) {
    if (ec || alive.expired() || !std::exchange(timeout_armed_, false)) return;
    if (!server_ || server_->backend_pid != pid) return;  // that server session is no longer this client's
    log::info("client {}: statement_timeout ({} ms) of a [[rules]] entry: cancelling it on {}", info_->id, d.count(),
              ep.text());
    asio::co_spawn(client_.get_executor(), send_cancel_request(ep, pid, key), asio::detached);
  });
}

}  // namespace sluice::frontend::pg

// What a pooled client is told when the server connection serving it died under a request that
// cannot run again, the same on both protocols (docs/design-decisions.md, "Failures").
#pragma once

#include <string>

namespace sluice::frontend {

enum class Loss {
  InTransaction,  // the transaction is gone: rolled back
  Read,           // a read: nothing was changed
  Unknown,        // anything else (a write, a COMMIT): it may or may not have completed
};

Loss classify_loss(bool in_transaction, bool read);
// "lost the connection to server <server> <what happened>"
std::string loss_text(Loss loss, const std::string& server);
// PostgreSQL's SQLSTATE for it: 40000 transaction_rollback, 08006 connection_failure (Sluice's
// connection to the server; the client's stays), 08007 transaction_resolution_unknown.
const char* loss_sqlstate(Loss loss);
// What the client may do about it.
const char* loss_hint(Loss loss);

}  // namespace sluice::frontend

// Words for a lost server connection (see header).
#include "src/frontend/common/server_loss.hpp"

namespace sluice::frontend {

Loss classify_loss(bool in_transaction, bool read) {
  if (in_transaction) return Loss::InTransaction;
  return read ? Loss::Read : Loss::Unknown;
}

std::string loss_text(Loss loss, const std::string& server) {
  const char* what = loss == Loss::InTransaction ? "during this transaction; the transaction is rolled back"
                     : loss == Loss::Read        ? "while it answered this query; nothing was changed"
                                                 : "while this statement ran; it may or may not have completed";
  return "lost the connection to server " + server + " " + what;
}

const char* loss_sqlstate(Loss loss) {
  return loss == Loss::InTransaction ? "40000" : loss == Loss::Read ? "08006" : "08007";
}

const char* loss_hint(Loss loss) {
  return loss == Loss::InTransaction ? "roll back, then run the transaction again"
         : loss == Loss::Read        ? "run the query again"
                                     : "check whether it took effect before running it again";
}

}  // namespace sluice::frontend

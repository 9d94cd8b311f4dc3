// The words both front ends use for a server connection lost under a client's request.
#include <doctest/doctest.h>

#include "src/frontend/common/server_loss.hpp"

using namespace sluice::frontend;

TEST_CASE("a lost server connection: in a transaction, a read, or an outcome nobody knows") {
  CHECK(classify_loss(true, true) == Loss::InTransaction);  // the transaction decides
  CHECK(classify_loss(false, true) == Loss::Read);
  CHECK(classify_loss(false, false) == Loss::Unknown);
  CHECK(loss_text(Loss::InTransaction, "10.0.0.1:5432") ==
        "lost the connection to server 10.0.0.1:5432 during this transaction; the transaction is rolled back");
  CHECK(loss_text(Loss::Read, "h:1").find("nothing was changed") != std::string::npos);
  CHECK(loss_text(Loss::Unknown, "h:1").find("may or may not have completed") != std::string::npos);
  CHECK(std::string(loss_sqlstate(Loss::InTransaction)) == "40000");
  CHECK(std::string(loss_sqlstate(Loss::Read)) == "08006");
  CHECK(std::string(loss_sqlstate(Loss::Unknown)) == "08007");
  CHECK(std::string(loss_hint(Loss::Unknown)).find("took effect") != std::string::npos);
}

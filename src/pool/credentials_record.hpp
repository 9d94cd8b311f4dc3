// A client's credentials as an online upgrade hands them to the new process (net/record.hpp):
// what the configuration says and what Sluice recovered from the client's own login (a SCRAM
// ClientKey, a mysql_native_password stage-1 hash, a password), without which a configuration
// that holds only stored secrets could not log in to the servers for this client again.
#pragma once

#include <functional>
#include <memory>

#include "src/net/record.hpp"
#include "src/pool/credentials.hpp"

namespace sluice::pool {

void write_credentials(net::RecordWriter& w, const Credentials& c);
// Credentials read back: `configured` (the new process's own for that user, when it has them)
// gains what was recovered; otherwise they are made from the record (a user learned through
// auth_query). Null when the record is malformed.
std::shared_ptr<const Credentials> read_credentials(
    net::RecordReader& r, const std::function<std::shared_ptr<const Credentials>(const std::string&)>& configured);

}  // namespace sluice::pool

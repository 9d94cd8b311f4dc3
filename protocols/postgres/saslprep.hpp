// SASLprep (RFC 4013, the stringprep profile for user names and passwords) applied to a SCRAM
// password the way PostgreSQL applies it (src/common/saslprep.c, RFC 7677 section 4): a pure
// ASCII password is used as is; a valid UTF-8 password is mapped and NFKC-normalized; one that is
// not valid UTF-8, or that holds characters SASLprep prohibits, is used as is too (PostgreSQL
// falls back to the raw bytes then, so Sluice must compute the same keys).
#pragma once

#include <string>
#include <string_view>

namespace sluice::pg {

std::string saslprep_password(std::string_view password);

}  // namespace sluice::pg

// SASLprep for SCRAM passwords, through libidn's stringprep (RFC 3454 tables, RFC 4013 profile).
#include "protocols/postgres/saslprep.hpp"

#include <stringprep.h>

#include <cstdlib>

namespace sluice::pg {

std::string saslprep_password(std::string_view password) {
  bool ascii = true;
  for (unsigned char c : password) ascii = ascii && c < 0x80;
  if (ascii || password.find('\0') != std::string_view::npos) return std::string(password);
  std::string in(password);
  char* out = nullptr;
  // Unassigned code points are prohibited: a password is a "stored string" (RFC 3454 section 7).
  int rc = stringprep_profile(in.c_str(), &out, "SASLprep", STRINGPREP_NO_UNASSIGNED);
  if (rc != STRINGPREP_OK || !out) {  // invalid UTF-8 or a prohibited character: the raw bytes
    std::free(out);
    return in;
  }
  std::string result(out);
  std::free(out);
  return result;
}

}  // namespace sluice::pg

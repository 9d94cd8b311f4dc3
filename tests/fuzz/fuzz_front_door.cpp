// libFuzzer target: what the front door reads from the network before any protocol: the PROXY
// protocol header (v1 and v2, whole and cut at every length) and the address texts it yields,
// parsed as CIDR blocks and addresses.
#include <cstddef>
#include <cstdint>
#include <string>

#include "protocols/common/proxy_header.hpp"
#include "src/config/cidr.hpp"

using namespace sluice;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::span<const std::uint8_t> in(data, size);
  proxy::Header h;
  std::string error;
  auto whole = proxy::parse(in, h, error);
  if (whole == proxy::Parse::Done) {
    if (h.length == 0 || h.length > size) __builtin_trap();  // a header within what was given
    for (const auto& a : {h.src_addr, h.dst_addr})
      if (!a.empty() && !config::IpAddress::parse(a)) __builtin_trap();  // what it names is an address
  }
  // A prefix never completes more than the whole does.
  for (std::size_t n = 0; n < size && n < 256; n += 7) {
    proxy::Header p;
    if (proxy::parse(in.first(n), p, error) == proxy::Parse::Done && whole != proxy::Parse::Done) __builtin_trap();
  }
  proxy::looks_like_header(in);
  std::string text(reinterpret_cast<const char*>(data), std::min<std::size_t>(size, 128));
  config::Cidr::parse(text, error);
  config::IpAddress::parse(text);
  return 0;
}

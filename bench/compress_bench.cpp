// The MySQL compressed protocol's own cost: CPU nanoseconds to frame (compress) and to unframe
// (decompress) one payload, zlib against zstd, for result shapes like sysbench's (compare with
// the end-to-end cost per transaction from BENCH_COMPRESSION=1 bench/sysbench_compare.sh, which
// only zlib clients can measure: no Debian or npm client speaks zstd).
//   build/compress_bench [iterations]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>

#include "protocols/mysql/compress.hpp"

using namespace sluice::my;

namespace {
double cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

// A text result set of `rows` rows of sysbench's c column (120 characters of digit groups).
std::string result_set(int rows) {
  std::string out;
  for (int i = 0; i < rows; ++i) {
    std::string c;
    for (int g = 0; g < 10; ++g) c += std::to_string(10000000000LL + (i * 7919 + g * 104729) % 89999999999LL) + "-";
    c.resize(119);
    out.push_back(static_cast<char>(c.size() + 1));
    out.append("\0\0", 2);
    out.push_back(static_cast<char>(i + 1));
    out.push_back(static_cast<char>(c.size()));
    out += c;
  }
  return out;
}
}  // namespace

int main(int argc, char** argv) {
  long iterations = argc > 1 ? std::atol(argv[1]) : 20000;
  std::printf("| payload | codec | bytes on the wire | compress ns | decompress ns |\n|---|---|---:|---:|---:|\n");
  for (int rows : {1, 10, 100}) {
    const std::string payload = result_set(rows);
    for (Codec codec : {Codec::Zlib, Codec::Zstd}) {
      std::string framed;
      double t0 = cpu_ns();
      for (long i = 0; i < iterations; ++i) {
        framed.clear();
        append_compressed(framed, payload, 0, codec, kDefaultZstdLevel);
      }
      double t1 = cpu_ns();
      std::string out;
      for (long i = 0; i < iterations; ++i) {
        out.clear();
        std::uint8_t seq = 0;
        std::size_t used = 0;
        next_compressed(as_bytes(framed), 1u << 24, out, seq, used, codec);
      }
      double t2 = cpu_ns();
      if (out != payload) return 1;
      std::printf("| %d rows (%zu bytes) | %s | %zu | %.0f | %.0f |\n", rows, payload.size(),
                  codec == Codec::Zlib ? "zlib" : "zstd", framed.size(), (t1 - t0) / static_cast<double>(iterations),
                  (t2 - t1) / static_cast<double>(iterations));
    }
  }
  return 0;
}

// Reading and writing whole MySQL messages on a socket, for the login phase and for Sluice's own
// exchanges with a server (state sync, re-prepare, KILL). The relay proper streams instead.
#pragma once

#include <boost/asio.hpp>

#include <optional>
#include <string>
#include <vector>

#include "protocols/mysql/codec.hpp"
#include "protocols/mysql/compress.hpp"
#include "src/net/await_op.hpp"
#include "src/net/tls.hpp"

namespace sluice::pool {

class MysqlIo {
 public:
  explicit MysqlIo(boost::asio::ip::tcp::socket& sock, std::size_t max_len = 64u << 20)
      : sock_(sock), max_len_(max_len) {}

  // Reads one logical message into payload(); false on a socket error, EOF or an oversized or
  // malformed message (error() says which).
  boost::asio::awaitable<bool> read();
  // read() in steps, for a caller that waits in its own coroutine frame: try_read() does all but
  // the wait (Done: a message in payload(); Fail: error() says why); for WantRead/WantWrite,
  // `auto [ec] = co_await wait(step)`, then waited(ec) (false: the read failed) and try again.
  enum class ReadStep { Done, Fail, WantRead, WantWrite };
  ReadStep try_read();
  auto wait(ReadStep st) {
    return sock_.async_wait(
        st == ReadStep::WantWrite ? boost::asio::ip::tcp::socket::wait_write : boost::asio::ip::tcp::socket::wait_read,
        net::await_op);
  }
  bool waited(boost::system::error_code ec);
  // The idle wait as a read by the caller (net::async_read_fast, into bytes of its own): true
  // when nothing of a message is buffered and the socket is read as it is (plain TCP, no
  // compression), and then it is the idle wait (idle_wait()). took() gives what that read
  // returned (false: it failed, error() says why); then try_read() again.
  bool idle_read_ready() {
    if (tls_ || compress_ || exact_ || !in_.empty() || !zin_.empty()) return false;
    release_idle_buffers();
    idle_wait_ = true;
    return true;
  }
  bool took(boost::system::error_code ec, const char* data, std::size_t n) {
    idle_wait_ = false;
    if (ec) error_ = ec.message();
    else append_read(data, n);
    return !ec;
  }
  // Writes `payload` as packets starting at `seq`.
  boost::asio::awaitable<bool> write(std::string_view payload, std::uint8_t seq);
  // Writes a reply to the last message read (sequence id + 1).
  boost::asio::awaitable<bool> reply(std::string_view payload) { return write(payload, return_seq_); }

  // Writes bytes that are already framed (result sets built elsewhere, cached answers).
  boost::asio::awaitable<bool> write_raw(std::string_view bytes);
  // The hot path's first try, plain TCP without compression: as much of `bytes` as the kernel
  // takes now, without a coroutine or an operation (0 otherwise); write_raw() sends the rest.
  std::size_t write_now(std::string_view bytes) {
    return tls_ || compress_ || compress_next_ ? 0 : net::send_now(sock_, boost::asio::buffer(bytes));
  }
  // The compressed protocol (CLIENT_COMPRESS: zlib, CLIENT_ZSTD_COMPRESSION_ALGORITHM: zstd at
  // `level`) starts after the next write (the login's OK).
  void compress_after_next_write(my::Codec codec = my::Codec::Zlib, int level = my::kDefaultZstdLevel) {
    compress_next_ = true;
    codec_ = codec;
    level_ = level;
  }
  bool compressed() const { return compress_; }
  // `bytes` as they must go on the wire now: in compressed frames once compression is on
  // (advancing the compressed sequence), else as they are. For writers outside write_raw.
  std::string framed(std::string_view bytes);
  // From now on, reads and writes go through this TLS stream (over the same socket).
  void set_tls(net::TlsStream* tls) { tls_ = tls; }
  bool tls() const { return tls_ != nullptr; }

  void set_limit(std::size_t max_len) { max_len_ = max_len; }
  // Read no byte past the current message (a MySQL client sends its TLS ClientHello right after
  // the SSLRequest packet without waiting: those bytes belong to the TLS layer).
  void set_exact(bool exact) { exact_ = exact; }
  const std::string& payload() const { return payload_; }
  // The message as the server is to get it instead (a [[rules]] rewrite of a statement).
  void replace_payload(std::string p) { payload_ = std::move(p); }
  my::Bytes bytes() const { return my::as_bytes(payload_); }
  std::uint8_t seq() const { return seq_; }
  const std::string& error() const { return error_; }
  // Waiting for the peer's next message with nothing of it read (plain TCP): a cancel now loses
  // nothing (the session may park, frontend/common/admission.hpp).
  bool idle_wait() const { return idle_wait_; }
  // Nothing buffered and no write under way (a parked client): every buffer's storage goes back.
  void release_buffers();
  // Bytes read past the last message (a pipelining peer).
  std::string& leftover() { return in_; }

 private:
  boost::asio::ip::tcp::socket& sock_;
  net::TlsStream* tls_ = nullptr;
  std::size_t max_len_;
  std::string in_, payload_, out_, error_;
  std::string zin_, zout_;  // compressed frames read, and written
  std::vector<char> chunk_;  // TLS reads only

  void append_read(const char* data, std::size_t n);
  // Waiting for the peer with nothing buffered: storage grown for a large message goes back.
  void release_idle_buffers();
  std::uint8_t seq_ = 0, return_seq_ = 0;
  std::uint8_t zseq_ = 0;  // the compressed sequence of the next frame written
  my::Codec codec_ = my::Codec::Zlib;
  int level_ = my::kDefaultZstdLevel;
  bool exact_ = false, compress_ = false, compress_next_ = false;
  bool idle_wait_ = false;
};

// Reads a one-row text result (column count, definitions, [EOF], row, terminator); NULL is "".
// nullopt on ERR or a broken connection.
boost::asio::awaitable<std::optional<std::vector<std::string>>> read_one_row(MysqlIo& io, bool deprecate_eof);

}  // namespace sluice::pool

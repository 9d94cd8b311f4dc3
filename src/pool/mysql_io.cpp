// Whole-message MySQL socket I/O (see header). Out of line on purpose: GCC 12 lays out the frame
// of an inline coroutine differently in different translation units, and the linker then pairs
// one unit's ramp with another's body.
#include "src/pool/mysql_io.hpp"

#include "protocols/mysql/compress.hpp"
#include "src/net/await_op.hpp"
#include "src/net/buffer_pool.hpp"

#include <algorithm>

namespace sluice::pool {

namespace asio = boost::asio;

void MysqlIo::append_read(const char* data, std::size_t n) { (compress_ ? zin_ : in_).append(data, n); }

void MysqlIo::release_idle_buffers() {
  for (auto* s : {&in_, &payload_, &zin_})             // not out_: a write may be under way
    if (s->capacity() > 4096) std::string().swap(*s);  // a large message's storage, kept no longer
}

void MysqlIo::release_buffers() {
  for (auto* s : {&in_, &payload_, &out_, &error_, &zin_, &zout_}) std::string().swap(*s);
  std::vector<char>().swap(chunk_);
}

asio::awaitable<bool> MysqlIo::read() {
  for (;;) {
    auto st = try_read();
    if (st == ReadStep::Done) co_return true;
    if (st == ReadStep::Fail) co_return false;
    auto [ec] = co_await wait(st);
    if (!waited(ec)) co_return false;
  }
}

bool MysqlIo::waited(boost::system::error_code ec) {
  idle_wait_ = false;
  if (ec) error_ = ec.message();
  return !ec;
}

MysqlIo::ReadStep MysqlIo::try_read() {
  for (;;) {
    std::size_t consumed = 0;
    auto d = my::next_message(my::as_bytes(in_), max_len_, payload_, seq_, consumed);
    if (d == my::Decode::Ok) {
      in_.erase(0, consumed);
      return_seq_ = static_cast<std::uint8_t>(seq_ + 1);
      return ReadStep::Done;
    }
    if (d == my::Decode::Malformed) {
      error_ = "message larger than the limit";
      return ReadStep::Fail;
    }
    constexpr std::size_t kChunk = 16384;
    std::size_t want = kChunk;
    if (exact_) {  // the header, then exactly the rest of this packet
      want = in_.size() < 4 ? 4 - in_.size()
                            : 4 + my::payload_length(reinterpret_cast<const std::uint8_t*>(in_.data())) - in_.size();
      want = std::min(want, kChunk);
    }
    boost::system::error_code ec;
    std::size_t n = 0;
    if (tls_) {
      // As plain TCP below, with OpenSSL's own try first: nothing complete there, and nothing
      // of a message buffered here, is the idle wait (the janitor may cancel it to park).
      if (chunk_.empty()) chunk_.resize(kChunk);
      auto st = tls_->try_read(asio::buffer(chunk_.data(), want), n, ec);
      if (st == net::TlsStream::Step::WantRead || st == net::TlsStream::Step::WantWrite) {
        bool idle = st == net::TlsStream::Step::WantRead && in_.empty() && zin_.empty();
        if (idle) release_idle_buffers();
        idle_wait_ = idle;
        return st == net::TlsStream::Step::WantRead ? ReadStep::WantRead : ReadStep::WantWrite;
      }
      if (st == net::TlsStream::Step::Fail && !ec) ec = asio::error::eof;  // a clean close_notify
      if (ec) {
        error_ = ec.message();
        return ReadStep::Fail;
      }
      append_read(chunk_.data(), n);
    } else {
      // Plain TCP: wait for bytes without holding a buffer (an idle peer holds none), then read
      // what is there into one of the worker's, appended at once.
      if (!sock_.non_blocking()) sock_.non_blocking(true, ec);
      auto& pool = net::client_buffers();
      auto buf = pool.take();
      n = sock_.read_some(asio::buffer(buf.data(), std::min(want, buf.size())), ec);
      if (!ec) append_read(reinterpret_cast<const char*>(buf.data()), n);
      pool.give(buf);
      if (ec == asio::error::would_block || ec == asio::error::try_again) {
        if (in_.empty()) release_idle_buffers();
        idle_wait_ = in_.empty() && zin_.empty();
        return ReadStep::WantRead;
      }
      if (ec) {
        error_ = ec.message();
        return ReadStep::Fail;
      }
    }
    if (!compress_) continue;
    std::size_t at = 0;
    for (;;) {
      std::size_t used = 0;
      std::uint8_t zseq = 0;
      auto z = my::next_compressed(my::as_bytes(zin_).subspan(at), max_len_ + 4, in_, zseq, used, codec_);
      if (z == my::Decode::NeedMore) break;
      if (z == my::Decode::Malformed || in_.size() > max_len_ + my::kMaxPayload) {
        error_ = "malformed compressed packet";
        return ReadStep::Fail;
      }
      at += used;
      zseq_ = static_cast<std::uint8_t>(zseq + 1);
    }
    zin_.erase(0, at);
  }
}

asio::awaitable<bool> MysqlIo::write(std::string_view payload, std::uint8_t seq) {
  out_.clear();
  my::append_packets(out_, payload, seq);
  co_return co_await write_raw(out_);
}

asio::awaitable<bool> MysqlIo::write_raw(std::string_view bytes) {
  boost::system::error_code ec;
  if (compress_) {
    zout_.clear();
    zseq_ = my::append_compressed(zout_, bytes, zseq_, codec_, level_);
    co_await net::Channel{sock_, tls_}.write(asio::buffer(zout_), ec);
  } else {
    co_await net::Channel{sock_, tls_}.write(asio::buffer(bytes), ec);
    if (compress_next_) {
      compress_ = true;
      compress_next_ = false;
      zseq_ = 0;
    }
  }
  if (ec) error_ = ec.message();
  co_return !ec;
}

std::string MysqlIo::framed(std::string_view bytes) {
  if (!compress_) return std::string(bytes);
  std::string out;
  zseq_ = my::append_compressed(out, bytes, zseq_, codec_, level_);
  return out;
}

}  // namespace sluice::pool

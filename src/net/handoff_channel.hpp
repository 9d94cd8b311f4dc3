// The channel between a running Sluice and the one replacing it (online upgrade): a connected
// Unix stream socket carrying framed messages, each of which may carry one descriptor
// (SCM_RIGHTS). Frame: u32 length of what follows (big-endian), u8 type, u8 "a descriptor came
// with this frame", payload. Blocking I/O with bounded waits: the upgrade runs on threads of its
// own, and a session handing its client over waits at most the send timeout.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::net {

struct HandoffMessage {
  std::uint8_t type = 0;
  std::string payload;
  int fd = -1;  // owned by the receiver: -1 when none came with the frame
};

// Sans-io: splits the received byte stream into frames, pairing each frame that says a
// descriptor came with it with the next received descriptor, in order.
class HandoffFrames {
 public:
  static constexpr std::size_t kMaxFrame = 64u << 20;
  static void encode(std::string& out, std::uint8_t type, std::string_view payload, bool with_fd);
  void bytes(std::string_view b) { in_.append(b); }
  void descriptor(int fd) { fds_.push_back(fd); }
  enum class Next { Frame, NeedMore, Malformed };
  // The next whole frame into `m` (its descriptor too, when it says one came and one has).
  Next next(HandoffMessage& m);
  // Descriptors received and not paired with a frame (closed by the owner at the end).
  std::deque<int>& unpaired() { return fds_; }

 private:
  std::string in_;
  std::deque<int> fds_;
};

class HandoffChannel {
 public:
  explicit HandoffChannel(int fd);  // takes the descriptor
  ~HandoffChannel();
  HandoffChannel(const HandoffChannel&) = delete;
  HandoffChannel& operator=(const HandoffChannel&) = delete;
  // One message, with `pass_fd` (not taken: the caller closes its copy) when >= 0. False when
  // the peer is gone or stopped reading for the send timeout. Any thread.
  bool send(std::uint8_t type, std::string_view payload, int pass_fd = -1);
  // The next message: nullopt at the peer's end, an error, a malformed frame, or after
  // `timeout_ms` (< 0: no limit) without one. One reader at a time.
  std::optional<HandoffMessage> receive(int timeout_ms = -1);
  // Ends the channel both ways: a blocked receive() returns.
  void shut();
  // Whether the last receive() ended by its timeout (the peer may still be there).
  bool timed_out() const { return timed_out_; }

 private:
  int fd_;
  std::mutex send_mu_;
  HandoffFrames frames_;
  bool timed_out_ = false;
};

}  // namespace sluice::net

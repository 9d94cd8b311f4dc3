// The online upgrade's channel (handoff_channel.hpp).
#include "src/net/handoff_channel.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>

namespace sluice::net {

namespace {
constexpr int kSendTimeoutMs = 5000;
constexpr std::size_t kMaxFds = 32;  // per recvmsg; the sender passes one per frame
}  // namespace

void HandoffFrames::encode(std::string& out, std::uint8_t type, std::string_view payload, bool with_fd) {
  const auto len = static_cast<std::uint32_t>(payload.size() + 2);
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<char>((len >> s) & 0xff));
  out.push_back(static_cast<char>(type));
  out.push_back(with_fd ? 1 : 0);
  out.append(payload);
}

HandoffFrames::Next HandoffFrames::next(HandoffMessage& m) {
  if (in_.size() < 4) return Next::NeedMore;
  std::uint32_t len = 0;
  for (int i = 0; i < 4; ++i) len = (len << 8) | static_cast<std::uint8_t>(in_[i]);
  if (len < 2 || len > kMaxFrame) return Next::Malformed;
  if (in_.size() - 4 < len) return Next::NeedMore;
  const bool with_fd = in_[5] == 1;
  if (in_[5] != 0 && in_[5] != 1) return Next::Malformed;
  // The descriptor travels with the frame's first byte, so it is here by the time the frame is.
  if (with_fd && fds_.empty()) return Next::Malformed;
  m.type = static_cast<std::uint8_t>(in_[4]);
  m.payload.assign(in_, 6, len - 2);
  m.fd = -1;
  if (with_fd) {
    m.fd = fds_.front();
    fds_.pop_front();
  }
  in_.erase(0, 4 + len);
  return Next::Frame;
}

HandoffChannel::HandoffChannel(int fd) : fd_(fd) {
  timeval tv{kSendTimeoutMs / 1000, 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

HandoffChannel::~HandoffChannel() {
  for (int fd : frames_.unpaired()) ::close(fd);
  ::close(fd_);
}

void HandoffChannel::shut() { ::shutdown(fd_, SHUT_RDWR); }

bool HandoffChannel::send(std::uint8_t type, std::string_view payload, int pass_fd) {
  std::string frame;
  HandoffFrames::encode(frame, type, payload, pass_fd >= 0);
  std::lock_guard lock(send_mu_);
  std::size_t sent = 0;
  bool fd_sent = pass_fd < 0;
  while (sent < frame.size()) {
    iovec iov{frame.data() + sent, frame.size() - sent};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int))> control{};
    if (!fd_sent) {
      msg.msg_control = control.data();
      msg.msg_controllen = control.size();
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int));
      std::memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
    }
    ssize_t n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;  // the peer is gone, or stalled past SO_SNDTIMEO
    }
    fd_sent = true;
    sent += static_cast<std::size_t>(n);
  }
  return true;
}

std::optional<HandoffMessage> HandoffChannel::receive(int timeout_ms) {
  timed_out_ = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms < 0 ? 0 : timeout_ms);
  for (;;) {
    HandoffMessage m;
    switch (frames_.next(m)) {
      case HandoffFrames::Next::Frame:
        return m;
      case HandoffFrames::Next::Malformed:
        return std::nullopt;
      case HandoffFrames::Next::NeedMore:
        break;
    }
    int wait = -1;
    if (timeout_ms >= 0) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        timed_out_ = true;
        return std::nullopt;
      }
      wait = static_cast<int>(left.count());
    }
    pollfd p{fd_, POLLIN, 0};
    int r = ::poll(&p, 1, wait);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return std::nullopt;
    if (r == 0) continue;  // the deadline check above ends it
    std::array<char, 64 * 1024> buf;
    iovec iov{buf.data(), buf.size()};
    alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int) * kMaxFds)> control{};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    ssize_t n = ::recvmsg(fd_, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (std::size_t i = 0; i < count; ++i) {
        int fd = -1;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        frames_.descriptor(fd);
      }
    }
    if (n <= 0) return std::nullopt;
    frames_.bytes(std::string_view(buf.data(), static_cast<std::size_t>(n)));
  }
}

}  // namespace sluice::net

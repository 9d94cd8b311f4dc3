// The listening sockets of this process, by key (a TCP listener's bound address as
// "address:port", a Unix socket's path), for an online upgrade: the running process passes each
// one to the new process (HandoffChannel), which listens on it instead of binding anew, so no
// connection attempt meets a closed port while the two change places.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace sluice::net::listening {

// A listener bound (or took over) socket `fd` for `key`; forget() when it closes it.
void note(const std::string& key, int fd);
void forget(int fd);
// Every listening socket open now: (key, descriptor), the descriptors still the listeners'.
std::vector<std::pair<std::string, int>> all();

// The new process: a socket the previous process passed on for `key`, kept until a listener
// for that key takes it (take(): -1 when none), or close_unclaimed() closes what the new
// configuration no longer listens on.
void offer(const std::string& key, int fd);
int take(const std::string& key);
void close_unclaimed();

}  // namespace sluice::net::listening

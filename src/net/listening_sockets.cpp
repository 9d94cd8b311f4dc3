// The listening sockets, by key (listening_sockets.hpp).
#include "src/net/listening_sockets.hpp"

#include <unistd.h>

#include <map>
#include <mutex>

namespace sluice::net::listening {

namespace {
std::mutex g_mu;
std::map<int, std::string> g_open;       // descriptor -> key
std::map<std::string, int> g_inherited;  // key -> descriptor, not yet taken
}  // namespace

void note(const std::string& key, int fd) {
  std::lock_guard lock(g_mu);
  g_open[fd] = key;
}

void forget(int fd) {
  std::lock_guard lock(g_mu);
  g_open.erase(fd);
}

std::vector<std::pair<std::string, int>> all() {
  std::lock_guard lock(g_mu);
  std::vector<std::pair<std::string, int>> out;
  for (auto& [fd, key] : g_open) out.emplace_back(key, fd);
  return out;
}

void offer(const std::string& key, int fd) {
  std::lock_guard lock(g_mu);
  if (auto it = g_inherited.find(key); it != g_inherited.end()) ::close(it->second);
  g_inherited[key] = fd;
}

int take(const std::string& key) {
  std::lock_guard lock(g_mu);
  auto it = g_inherited.find(key);
  if (it == g_inherited.end()) return -1;
  int fd = it->second;
  g_inherited.erase(it);
  return fd;
}

void close_unclaimed() {
  std::lock_guard lock(g_mu);
  for (auto& [key, fd] : g_inherited) ::close(fd);
  g_inherited.clear();
}

}  // namespace sluice::net::listening

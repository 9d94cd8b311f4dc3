// What [[access]] and [[firewall.rules]] match a client by, written once: a name list (empty =
// any) and a user list whose "+group" entries match the members of a [[users]] group.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::access {

inline bool listed(const std::vector<std::string>& list, std::string_view v) {
  return list.empty() || std::find(list.begin(), list.end(), v) != list.end();
}

inline bool user_listed(const std::vector<std::string>& list, std::string_view user,
                        const std::vector<std::string>* groups) {
  if (list.empty()) return true;
  for (auto& u : list) {
    if (u.size() > 1 && u[0] == '+') {
      if (groups && std::find(groups->begin(), groups->end(), std::string_view(u).substr(1)) != groups->end())
        return true;
    } else if (u == user) {
      return true;
    }
  }
  return false;
}

}  // namespace sluice::access

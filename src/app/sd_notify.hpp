// The service manager's readiness protocol (sd_notify(3)): one datagram per state change to the
// Unix socket named by $NOTIFY_SOCKET, so that a `Type=notify` unit counts Sluice as started only
// once its listeners are bound. No libsystemd: the protocol is one sendto(). Without
// $NOTIFY_SOCKET (not under systemd) every call does nothing.
#pragma once

#include <string>
#include <string_view>

namespace sluice::app {

// Sends `state` ("READY=1", "RELOADING=1\nMONOTONIC_USEC=...", "STOPPING=1", "STATUS=...").
// Returns false when there is no socket to tell or the send failed.
bool sd_notify(std::string_view state);

// "RELOADING=1" with the monotonic clock's microseconds, as systemd 253+ expects of
// Type=notify-reload units (earlier versions ignore the extra field).
std::string sd_reloading();

}  // namespace sluice::app

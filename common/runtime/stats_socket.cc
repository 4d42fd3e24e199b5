#include "common/runtime/stats_socket.h"

#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace vhost {

void StatsRegistry::Add(const std::string& socket, const Backend* backend) {
  absl::MutexLock lock(&mu_);
  backends_.emplace_back(socket, backend);
}

void StatsRegistry::Remove(const Backend* backend) {
  absl::MutexLock lock(&mu_);
  backends_.erase(std::remove_if(backends_.begin(), backends_.end(),
                                 [backend](const auto& entry) { return entry.second == backend; }),
                  backends_.end());
}

std::string StatsRegistry::Json() const {
  std::string json =
      absl::StrCat("{\"daemon\":", JsonString(program_), ",\"version\":", JsonString(version_),
                   ",\"pid\":", getpid(), ",\"instances\":[");
  absl::MutexLock lock(&mu_);
  for (size_t i = 0; i < backends_.size(); ++i) {
    // The back end's object, with the socket's name first.
    const std::string stats = backends_[i].second->StatsJson();
    absl::StrAppend(&json, i == 0 ? "" : ",", "{\"socket\":", JsonString(backends_[i].first), ",",
                    stats.substr(1));
  }
  return json + "]}";
}

std::unique_ptr<ControlSocket> ServeStats(UniqueFd listener, const StatsRegistry* registry) {
  return ControlSocket::StartOn(
      std::move(listener), [registry](absl::string_view line) -> absl::StatusOr<std::string> {
        if (line == "stats") return registry->Json();
        return absl::InvalidArgumentError("unknown command (the stats socket knows \"stats\")");
      });
}

std::string JsonString(const std::string& text) {
  std::string out = "\"";
  for (const unsigned char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      out += absl::StrFormat("\\u%04x", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

}  // namespace vhost

// Runs inside the test guest against the gpiochip its gpio-virtio driver made of our device,
// through vhost-user-gpio's own HostChip (the GPIO uAPI v2): so the guest test exercises the
// host-chip code on a real kernel gpiochip as well.
//
//   gpio_guest_tool CHIP info                 label=.. lines=N names=a,b,..
//   gpio_guest_tool CHIP set LINE VALUE SECS  drives an output, says READY, holds it SECS
//   gpio_guest_tool CHIP wait LINE SECS       watches edges, says READY, prints the first edge
// READY goes to stderr, so that the host sees it on the console even when stdout is piped.
#include <poll.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_join.h"
#include "vhost-user-gpio/host_chip.h"

namespace {

int Fail(const absl::Status& status) {
  std::printf("E2E-RESULT tool_error=%s\n", std::string(status.message()).c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s CHIP info|set|wait ...\n", argv[0]);
    return 2;
  }
  absl::StatusOr<std::unique_ptr<vhost::HostChip>> chip = vhost::HostChip::Open(argv[1]);
  if (!chip.ok()) return Fail(chip.status());
  const std::string op = argv[2];
  if (op == "info") {
    std::vector<std::string> names;
    for (uint16_t i = 0; i < (*chip)->num_lines(); ++i) names.push_back((*chip)->line_name(i));
    std::printf("label=%s lines=%d names=%s\n", (*chip)->label().c_str(), (*chip)->num_lines(),
                absl::StrJoin(names, ",").c_str());
    return 0;
  }
  if (op == "set" && argc == 6) {
    const uint16_t line = std::atoi(argv[3]);
    absl::Status s = (*chip)->SetDirection(line, vhost::Direction::kOut, std::atoi(argv[4]) != 0);
    if (!s.ok()) return Fail(s);
    std::fprintf(stderr, "E2E-READY set\n");  // stderr: reaches the console even if piped
    sleep(std::atoi(argv[5]));
    return 0;
  }
  if (op == "wait" && argc == 5) {
    const uint16_t line = std::atoi(argv[3]);
    absl::Status s = (*chip)->SetDirection(line, vhost::Direction::kIn, false);
    if (s.ok()) s = (*chip)->WatchEdges(line, true);
    if (!s.ok()) return Fail(s);
    std::fprintf(stderr, "E2E-READY wait\n");
    pollfd fd = {(*chip)->event_fd(), POLLIN, 0};
    if (poll(&fd, 1, std::atoi(argv[4]) * 1000) != 1) {
      std::printf("E2E-RESULT edge=none\n");
      return 1;
    }
    for (const vhost::LineEvent& event : (*chip)->TakeEvents()) {
      std::printf("E2E-RESULT edge=%d:%d\n", event.line, event.level ? 1 : 0);
      return 0;
    }
    std::printf("E2E-RESULT edge=empty\n");
    return 1;
  }
  std::fprintf(stderr, "bad arguments\n");
  return 2;
}

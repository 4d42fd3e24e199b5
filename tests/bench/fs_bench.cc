// vhost-user-fs against QEMU 7.2's C virtiofsd, driven the same way through our front end
// (tests/frontend/fuse_client: one request at a time, busy-polling, as a guest's single
// synchronous thread would issue them) on the same kind of directory in /tmp: file creation
// (CREATE + RELEASE + FORGET), stat (GETATTR), 1 MiB sequential writes and reads (page cache). Each
// daemon pinned to CPU 0, the client to CPU 1. Prints figures and ours/theirs; asserts nothing.
//
//   bazel build //tests/bench:fs_bench && bazel-bin/tests/bench/fs_bench --seconds=2 --repeat=3
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/base/status_macros.h"
#include "gflags/gflags.h"
#include "tests/bench/bench_util.h"
#include "tests/frontend/daemon_fixture.h"
#include "tests/frontend/fuse_client.h"
#include "tests/integration/runfiles.h"

DEFINE_double(seconds, 2.0, "Measured time per case and run");
DEFINE_int32(repeat, 1, "Runs per case; the median is reported");
DEFINE_string(ours_extra, "", "An extra flag for our daemon (experiments), e.g. --poll-us=0");
DEFINE_string(virtiofsd, "/var/cache/vhost-user-peers/virtiofsd",
              "The peer: QEMU 7.2's virtiofsd (scripts/setup.sh puts it there)");

namespace vhost {
namespace {

using frontend::DaemonSession;
using frontend::FuseClient;

constexpr uint64_t kRoot = 1;

struct Figures {
  double creates = 0, stats = 0, write_mbps = 0, read_mbps = 0;
};

absl::StatusOr<Figures> Measure(bool ours, int run) {
  ASSIGN_OR_RETURN(auto session, DaemonSession::Create("fs-bench"));
  const std::string shared = session->File("shared");
  mkdir(shared.c_str(), 0755);
  const std::string& socket = session->socket();
  std::vector<std::string> args;
  if (ours) {
    args = {"-c",
            "0",
            RunfilePath("vhost-user-fs/vhost-user-fs"),
            "--socket-path=" + socket,
            "--shared-dir=" + shared,
            "--cache=auto"};
    if (!FLAGS_ours_extra.empty()) args.push_back(FLAGS_ours_extra);
  } else {
    args = {"-c", "0",         FLAGS_virtiofsd, "--socket-path=" + socket, "-o", "source=" + shared,
            "-o", "cache=auto"};
  }
  RETURN_IF_ERROR(session->Start("taskset", args));
  ASSIGN_OR_RETURN(auto fs, FuseClient::Start(socket, /*busy_poll=*/true));
  Figures f;
  const absl::Duration span = absl::Seconds(FLAGS_seconds);
  // Creation.
  int created = 0;
  absl::Time start = absl::Now();
  while (absl::Now() - start < span) {
    ASSIGN_OR_RETURN(auto file, fs->Create(kRoot, absl::StrCat("f", run, "_", created)));
    RETURN_IF_ERROR(fs->Release(file.first, file.second));
    // As the guest's inode cache does sooner or later; otherwise every daemon that keeps an
    // O_PATH descriptor per inode (both do) runs out of descriptors.
    RETURN_IF_ERROR(fs->Forget(file.first, 1));
    ++created;
  }
  f.creates = created / absl::ToDoubleSeconds(absl::Now() - start);
  // Stat.
  ASSIGN_OR_RETURN(auto big, fs->Create(kRoot, "big"));
  int stats = 0;
  start = absl::Now();
  while (absl::Now() - start < span) {
    RETURN_IF_ERROR(fs->GetAttr(big.first).status());
    ++stats;
  }
  f.stats = stats / absl::ToDoubleSeconds(absl::Now() - start);
  // Sequential write, then read, 1 MiB requests over a 256 MiB file.
  constexpr uint64_t kFile = 256ull << 20;
  uint64_t bytes = 0;
  start = absl::Now();
  while (absl::Now() - start < span) {
    ASSIGN_OR_RETURN(uint32_t n, fs->WriteInPlace(big.first, big.second, bytes % kFile, 1 << 20));
    bytes += n;
  }
  f.write_mbps = bytes / absl::ToDoubleSeconds(absl::Now() - start) / 1e6;
  bytes = 0;
  start = absl::Now();
  while (absl::Now() - start < span) {
    ASSIGN_OR_RETURN(uint32_t n, fs->ReadInPlace(big.first, big.second, bytes % kFile, 1 << 20));
    bytes += n;
    if (n == 0) bytes += 1 << 20;  // past the end: wrap
  }
  f.read_mbps = bytes / absl::ToDoubleSeconds(absl::Now() - start) / 1e6;
  return f;
}

int Main() {
  PinTo(1);
  std::vector<double> ours[4], theirs[4];
  for (int i = 0; i < FLAGS_repeat; ++i) {
    for (bool mine : {true, false}) {
      absl::StatusOr<Figures> f = Measure(mine, i);
      if (!f.ok()) {
        std::fprintf(stderr, "%s: %s\n", mine ? "vhost-user-fs" : "virtiofsd",
                     f.status().ToString().c_str());
        return 1;
      }
      auto& v = mine ? ours : theirs;
      v[0].push_back(f->creates);
      v[1].push_back(f->stats);
      v[2].push_back(f->write_mbps);
      v[3].push_back(f->read_mbps);
    }
  }
  const char* names[4] = {"create /s", "getattr /s", "seq write 1 MiB MB/s", "seq read 1 MiB MB/s"};
  std::printf("%-24s %14s %14s %8s\n", "case", "vhost-user-fs", "virtiofsd 7.2", "ratio");
  for (int c = 0; c < 4; ++c) {
    const double a = Median(ours[c]), b = Median(theirs[c]);
    std::printf("%-24s %14.0f %14.0f %7.2fx\n", names[c], a, b, a / b);
  }
  return 0;
}

}  // namespace
}  // namespace vhost

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  return vhost::Main();
}

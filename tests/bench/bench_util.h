// Small helpers shared by the benchmarks.
#ifndef TESTS_BENCH_BENCH_UTIL_H_
#define TESTS_BENCH_BENCH_UTIL_H_

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace vhost {

// User + system CPU time of a whole process (all its threads), from /proc/PID/stat.
inline absl::Duration ProcessCpuTime(pid_t pid) {
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  std::string line;
  std::getline(stat, line);
  std::istringstream fields(line.substr(line.rfind(')') + 2));
  std::string skip;
  for (int i = 3; i < 14; ++i) fields >> skip;  // fields 3..13
  long utime = 0, stime = 0;
  fields >> utime >> stime;
  return absl::Seconds(static_cast<double>(utime + stime) / sysconf(_SC_CLK_TCK));
}

// Runs the calling thread on `cpu` only (daemon and front end on CPUs of their own).
inline void PinTo(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  sched_setaffinity(0, sizeof(set), &set);
}

inline double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// The value below which a fraction `p` of the samples lie (0 with none).
inline double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

// Writes a file of `bytes` (a multiple of 1 MiB) and syncs it: the page-cached backing of the
// block benchmarks.
inline absl::Status MakeFilledFile(const std::string& path, uint64_t bytes) {
  const int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) return absl::ErrnoToStatus(errno, "open " + path);
  std::vector<char> chunk(1 << 20, 0x5a);
  for (uint64_t off = 0; off < bytes; off += chunk.size()) {
    if (pwrite(fd, chunk.data(), chunk.size(), off) != static_cast<ssize_t>(chunk.size())) {
      close(fd);
      return absl::ErrnoToStatus(errno, "write " + path);
    }
  }
  fsync(fd);
  close(fd);
  return absl::OkStatus();
}

// What a block benchmark measures in one run of a case.
struct IoResult {
  double ops_per_second = 0;
  double megabytes_per_second = 0;
  double cpu_us_per_op = 0;
};

// Runs `run` `repeat` times and returns each figure's median, or the first error.
inline absl::StatusOr<IoResult> MedianOfRuns(int repeat,
                                             const std::function<absl::StatusOr<IoResult>()>& run) {
  std::vector<double> ops, mbps, cpu;
  for (int i = 0; i < repeat; ++i) {
    absl::StatusOr<IoResult> r = run();
    if (!r.ok()) return r.status();
    ops.push_back(r->ops_per_second);
    mbps.push_back(r->megabytes_per_second);
    cpu.push_back(r->cpu_us_per_op);
  }
  return IoResult{Median(ops), Median(mbps), Median(cpu)};
}

// One table row: a device against its peer, and the ratio of their rates.
inline void PrintComparison(const char* disk, int name_width, const char* name,
                            const IoResult& ours, const IoResult& peer) {
  std::printf("%-6s %-*s %12.0f %10.1f %8.2fus %12.0f %10.1f %8.2fus %7.2fx\n", disk, name_width,
              name, ours.ops_per_second, ours.megabytes_per_second, ours.cpu_us_per_op,
              peer.ops_per_second, peer.megabytes_per_second, peer.cpu_us_per_op,
              ours.ops_per_second / peer.ops_per_second);
  std::fflush(stdout);
}

}  // namespace vhost

#endif  // TESTS_BENCH_BENCH_UTIL_H_

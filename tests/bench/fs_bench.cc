// vhost-user-fs against QEMU 7.2's C virtiofsd, driven the same way through our front end
// (tests/frontend/fuse_client: one request at a time, busy-polling, as a guest's single
// synchronous thread would issue them) on the same kind of directory in /tmp: file creation
// (CREATE + RELEASE + FORGET), stat (GETATTR), 1 MiB sequential writes and reads (page cache). Each
// daemon pinned to CPU 0, the client to CPU 1. Prints figures and ours/theirs; asserts nothing.
//
//   bazel build //tests/bench:fs_bench && bazel-bin/tests/bench/fs_bench --seconds=2 --repeat=3
//
// With --inflight=1,4,16 it runs the concurrency table instead (issue 20; see ConcurrencyMain):
// several requests in flight over --queues request queues and a --pool thread pool.
#include <dirent.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/algorithm/container.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
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
DEFINE_string(inflight, "",
              "Comma-separated in-flight counts (e.g. 1,4,16): the concurrency table instead");
DEFINE_int32(queues, 1, "Concurrency table: request queues our daemon is driven over");
DEFINE_int32(pool, 1, "Concurrency table: our --thread-pool-size");
DEFINE_int32(their_pool, -1,
             "Concurrency table: virtiofsd's --thread-pool-size; -1: as --pool, at most 1 (with "
             "more, QEMU 7.2's virtiofsd is killed by its own seccomp filter: glib's pool "
             "threads call sched_getaffinity)");
DEFINE_string(ops, "",
              "Concurrency table: only these operations, comma-separated (create, stat, readdir, "
              "randread, seqread, seqwrite); all when empty");
DEFINE_string(cache_dir, "/tmp/fs-bench-cache",
              "Concurrency table: the shared directory, its 100,000-entry directory and 256 MiB "
              "file made once and kept");

namespace vhost {
namespace {

using frontend::Buffer;
using frontend::DaemonSession;
using frontend::DeviceConnection;
using frontend::DeviceOptions;
using frontend::FuseClient;
using frontend::UsedElement;

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

// ---- Concurrency table (issue 20) ----
//
// One front-end thread on CPU 1 keeps K operations in flight, spread round-robin over the
// request queues, busy-polling every used ring; each slot has its own request and reply buffers
// in guest memory. An operation may take several requests (create: CREATE, RELEASE, FORGET;
// readdir: OPENDIR, READDIR until empty, RELEASEDIR), issued one after the other by its slot.
// "direct" is the same operations by K host threads with plain syscalls on the same files,
// pinned to CPU 0: the daemon's CPU budget, without the virtqueue and the FUSE layer.

enum class Op { kCreate, kStat, kReaddir, kRandRead, kSeqRead, kSeqWrite };
constexpr Op kOps[] = {Op::kCreate,   Op::kStat,    Op::kReaddir,
                       Op::kRandRead, Op::kSeqRead, Op::kSeqWrite};
// The operations measured: --ops, or all of kOps.
std::vector<Op> ops;
const char* OpFlag(Op op) {
  switch (op) {
    case Op::kCreate:
      return "create";
    case Op::kStat:
      return "stat";
    case Op::kReaddir:
      return "readdir";
    case Op::kRandRead:
      return "randread";
    case Op::kSeqRead:
      return "seqread";
    case Op::kSeqWrite:
      return "seqwrite";
  }
  return "?";
}
const char* OpName(Op op) {
  switch (op) {
    case Op::kCreate:
      return "create";
    case Op::kStat:
      return "stat";
    case Op::kReaddir:
      return "readdir 100k";
    case Op::kRandRead:
      return "4k randread";
    case Op::kSeqRead:
      return "1M seqread";
    case Op::kSeqWrite:
      return "1M seqwrite";
  }
  return "?";
}

constexpr uint64_t kBigFile = 256ull << 20;
constexpr int kDirEntries = 100000;
constexpr uint32_t kDirBuffer = 32 << 10;  // as glibc's readdir asks getdents64 for
constexpr uint32_t kSlotBuffer = (1 << 20) + 64 * 1024;

// The shared directory both daemons serve: the 100,000-entry directory and the 256 MiB file
// are made once and kept (their creation takes far longer than a run); creations go to a
// scratch directory per run, removed afterwards.
absl::Status PrepareCache(const std::string& dir) {
  mkdir(dir.c_str(), 0755);
  const std::string big = dir + "/big";
  struct stat st;
  if (stat(big.c_str(), &st) != 0 || static_cast<uint64_t>(st.st_size) != kBigFile) {
    RETURN_IF_ERROR(MakeFilledFile(big, kBigFile));
  }
  const std::string entries = dir + "/dir100k";
  const std::string done = dir + "/dir100k.done";
  if (stat(done.c_str(), &st) == 0) return absl::OkStatus();
  std::fprintf(stderr, "creating %d entries in %s (once)\n", kDirEntries, entries.c_str());
  mkdir(entries.c_str(), 0755);
  for (int i = 0; i < kDirEntries; ++i) {
    const int fd =
        open(absl::StrCat(entries, "/e", i).c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) return absl::ErrnoToStatus(errno, "create entry");
    close(fd);
  }
  const int fd = open(done.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) return absl::ErrnoToStatus(errno, "create marker");
  close(fd);
  return absl::OkStatus();
}

template <typename T>
void Put(uint8_t*& p, const T& v) {
  std::memcpy(p, &v, sizeof(v));
  p += sizeof(v);
}

class ConcurrentClient {
 public:
  struct Slot {
    uint64_t in_gpa = 0, out_gpa = 0;
    uint8_t *in = nullptr, *out = nullptr;
    size_t queue = 1;  // the request queue its requests go to
    int step = 0;
    uint64_t node = 0, fh = 0, offset = 0;
    uint64_t serial = 0;
  };

  static absl::StatusOr<std::unique_ptr<ConcurrentClient>> Start(const std::string& socket,
                                                                 int queues, int slots) {
    std::unique_ptr<ConcurrentClient> c(new ConcurrentClient());
    DeviceOptions options;
    options.ram_size = 64ull << 20;
    options.queue_sizes.assign(1 + queues, 128);
    ASSIGN_OR_RETURN(c->device_, DeviceConnection::Open(socket, options));
    c->owner_.assign(1 + queues, std::vector<int>(128, -1));
    c->slots_.resize(slots);
    for (int i = 0; i < slots; ++i) {
      Slot& s = c->slots_[i];
      ASSIGN_OR_RETURN(s.in_gpa, c->device_->ram()->Allocate(kSlotBuffer, 4096, &s.in));
      ASSIGN_OR_RETURN(s.out_gpa, c->device_->ram()->Allocate(kSlotBuffer, 4096, &s.out));
      s.queue = 1 + i % queues;
    }
    fuse_init_in init{};
    init.major = FUSE_KERNEL_VERSION;
    init.minor = FUSE_KERNEL_MINOR_VERSION;
    init.max_readahead = 1 << 17;
    init.flags =
        FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_DO_READDIRPLUS | FUSE_MAX_PAGES | FUSE_INIT_EXT;
    ASSIGN_OR_RETURN(std::string reply, c->Call(FUSE_INIT, 0, &init, sizeof(init)));
    return c;
  }

  // One request on slot 0, waited for: setup (LOOKUP, OPEN). Returns the reply body.
  absl::StatusOr<std::string> Call(uint32_t opcode, uint64_t node, const void* args, size_t len,
                                   const std::string& name = "") {
    Slot& s = slots_[0];
    uint8_t* p = Begin(s, opcode, node);
    std::memcpy(p, args, len);
    p += len;
    std::memcpy(p, name.c_str(), name.empty() ? 0 : name.size() + 1);
    p += name.empty() ? 0 : name.size() + 1;
    RETURN_IF_ERROR(Issue(1, s, p, 8192));
    RETURN_IF_ERROR(device_->queue(s.queue)->Submit().status());
    ASSIGN_OR_RETURN(UsedElement used,
                     device_->queue(s.queue)->WaitForUsed(absl::Seconds(30), true));
    owner_[s.queue][used.id] = -1;
    fuse_out_header out;
    std::memcpy(&out, s.out, sizeof(out));
    if (out.error != 0)
      return absl::ErrnoToStatus(-out.error, absl::StrCat("FUSE opcode ", opcode));
    return std::string(reinterpret_cast<char*>(s.out) + sizeof(out), out.len - sizeof(out));
  }

  // Runs `op` on the first `inflight` slots for `span`; returns operations completed per second
  // inside the window. `*all`: every one completed, the window's and those drained after it.
  absl::StatusOr<double> Run(Op op, int inflight, absl::Duration span, uint64_t* all);

  uint64_t scratch = 0, dir = 0, big = 0, big_fh = 0;

 private:
  uint8_t* Begin(Slot& s, uint32_t opcode, uint64_t node) {
    fuse_in_header in{};
    in.opcode = opcode;
    in.unique = ++unique_;
    in.nodeid = node;
    in.uid = getuid();
    in.gid = getgid();
    in.pid = 1;
    std::memcpy(s.in, &in, sizeof(in));
    return s.in + sizeof(in);
  }
  // Adds the request built in s.in (up to `end`) to queue `queue` (0: high priority, no reply).
  absl::Status Issue(size_t queue, Slot& s, uint8_t* end, uint32_t room) {
    const uint32_t len = static_cast<uint32_t>(end - s.in);
    reinterpret_cast<fuse_in_header*>(s.in)->len = len;
    const size_t q = queue == 0 ? 0 : s.queue;
    std::vector<Buffer> writable;
    if (q != 0)
      writable.push_back({s.out_gpa, static_cast<uint32_t>(sizeof(fuse_out_header) + room)});
    ASSIGN_OR_RETURN(uint16_t head,
                     device_->queue(q)->ring().AddChain({{s.in_gpa, len}}, writable));
    owner_[q][head] = static_cast<int>(&s - slots_.data());
    dirty_[q] = true;
    return absl::OkStatus();
  }
  // The first request of `op` on slot s.
  absl::Status Begin(Op op, Slot& s);
  // A reply came for slot s; issues its next request. Returns whether its operation is done.
  absl::StatusOr<bool> Continue(Op op, Slot& s);

  std::unique_ptr<DeviceConnection> device_;
  std::vector<Slot> slots_;
  std::vector<std::vector<int>> owner_;  // [queue][head] -> slot
  bool dirty_[65] = {};
  uint64_t unique_ = 0, created_ = 0;
  uint64_t seq_offset_ = 0;
  std::mt19937_64 rng_{42};
};

absl::Status ConcurrentClient::Begin(Op op, Slot& s) {
  s.step = 0;
  switch (op) {
    case Op::kCreate: {
      uint8_t* p = Begin(s, FUSE_CREATE, scratch);
      fuse_create_in in{};
      in.flags = O_RDWR;
      in.mode = 0100644;
      Put(p, in);
      const std::string name = absl::StrCat("c", ++created_);
      std::memcpy(p, name.c_str(), name.size() + 1);
      return Issue(1, s, p + name.size() + 1, sizeof(fuse_entry_out) + sizeof(fuse_open_out));
    }
    case Op::kStat: {
      uint8_t* p = Begin(s, FUSE_GETATTR, big);
      Put(p, fuse_getattr_in{});
      return Issue(1, s, p, sizeof(fuse_attr_out));
    }
    case Op::kReaddir: {
      uint8_t* p = Begin(s, FUSE_OPENDIR, dir);
      fuse_open_in in{};
      in.flags = O_RDONLY | O_DIRECTORY;
      Put(p, in);
      return Issue(1, s, p, sizeof(fuse_open_out));
    }
    case Op::kRandRead:
    case Op::kSeqRead: {
      uint8_t* p = Begin(s, FUSE_READ, big);
      fuse_read_in in{};
      in.fh = big_fh;
      in.size = op == Op::kRandRead ? 4096 : 1 << 20;
      if (op == Op::kRandRead) {
        in.offset = (rng_() % (kBigFile / 4096)) * 4096;
      } else {
        in.offset = seq_offset_;
        seq_offset_ = (seq_offset_ + (1 << 20)) % kBigFile;
      }
      Put(p, in);
      return Issue(1, s, p, in.size);
    }
    case Op::kSeqWrite: {
      uint8_t* p = Begin(s, FUSE_WRITE, big);
      fuse_write_in in{};
      in.fh = big_fh;
      in.size = 1 << 20;
      in.offset = seq_offset_;
      seq_offset_ = (seq_offset_ + (1 << 20)) % kBigFile;
      Put(p, in);
      // The data: whatever the slot's buffer holds (a guest's page cache would hold it).
      return Issue(1, s, p + in.size, sizeof(fuse_write_out));
    }
  }
  return absl::InternalError("op");
}

absl::StatusOr<bool> ConcurrentClient::Continue(Op op, Slot& s) {
  fuse_out_header out;
  std::memcpy(&out, s.out, sizeof(out));
  if (out.error != 0 && !(op == Op::kCreate && s.step == 2)) {
    return absl::ErrnoToStatus(-out.error, absl::StrCat(OpName(op), " step ", s.step));
  }
  const uint8_t* body = s.out + sizeof(out);
  switch (op) {
    case Op::kCreate:
      if (s.step == 0) {  // CREATE -> RELEASE
        fuse_entry_out entry;
        fuse_open_out open;
        std::memcpy(&entry, body, sizeof(entry));
        std::memcpy(&open, body + sizeof(entry), sizeof(open));
        s.node = entry.nodeid;
        uint8_t* p = Begin(s, FUSE_RELEASE, s.node);
        fuse_release_in in{};
        in.fh = open.fh;
        Put(p, in);
        RETURN_IF_ERROR(Issue(1, s, p, 0));
        s.step = 1;
        return false;
      }
      if (s.step == 1) {  // RELEASE -> FORGET on the high-priority queue (no reply)
        uint8_t* p = Begin(s, FUSE_FORGET, s.node);
        fuse_forget_in in{};
        in.nlookup = 1;
        Put(p, in);
        std::memset(s.out, 0, sizeof(out));
        RETURN_IF_ERROR(Issue(0, s, p, 0));
        s.step = 2;
        return false;
      }
      return true;
    case Op::kStat:
    case Op::kRandRead:
    case Op::kSeqRead:
    case Op::kSeqWrite:
      return true;
    case Op::kReaddir: {
      if (s.step == 2) return true;  // RELEASEDIR done
      if (s.step == 0) {
        fuse_open_out open;
        std::memcpy(&open, body, sizeof(open));
        s.fh = open.fh;
        s.offset = 0;
      } else {
        // Walk the entries for the last one's cookie; an empty reply ends the pass.
        const uint32_t n = out.len - sizeof(out);
        uint32_t at = 0;
        while (at + FUSE_NAME_OFFSET <= n) {
          fuse_dirent d;
          std::memcpy(&d, body + at, FUSE_NAME_OFFSET);
          s.offset = d.off;
          at += FUSE_DIRENT_SIZE(&d);
        }
        if (n == 0) {
          uint8_t* p = Begin(s, FUSE_RELEASEDIR, dir);
          fuse_release_in in{};
          in.fh = s.fh;
          Put(p, in);
          RETURN_IF_ERROR(Issue(1, s, p, 0));
          s.step = 2;
          return false;
        }
      }
      uint8_t* p = Begin(s, FUSE_READDIR, dir);
      fuse_read_in in{};
      in.fh = s.fh;
      in.offset = s.offset;
      in.size = kDirBuffer;
      Put(p, in);
      RETURN_IF_ERROR(Issue(1, s, p, kDirBuffer));
      s.step = 1;
      return false;
    }
  }
  return absl::InternalError("op");
}

absl::StatusOr<double> ConcurrentClient::Run(Op op, int inflight, absl::Duration span,
                                             uint64_t* all) {
  const size_t queues = device_->num_queues();
  for (int i = 0; i < inflight; ++i) RETURN_IF_ERROR(Begin(op, slots_[i]));
  auto submit = [&]() -> absl::Status {
    for (size_t q = 0; q < queues; ++q) {
      if (dirty_[q]) RETURN_IF_ERROR(device_->queue(q)->Submit().status());
      dirty_[q] = false;
    }
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(submit());
  const absl::Time start = absl::Now();
  const absl::Time end = start + span;
  const absl::Time deadline_for_stuck = end + absl::Seconds(30);
  uint64_t done = 0;
  int busy = inflight;
  bool stopping = false;
  absl::Time now = start;
  while (busy > 0) {
    for (size_t q = 0; q < queues; ++q) {
      while (true) {
        ASSIGN_OR_RETURN(absl::optional<UsedElement> used, device_->queue(q)->PollUsed());
        if (!used) break;
        const int i = owner_[q][used->id];
        if (i < 0) return absl::DataLossError("used element nobody sent");
        owner_[q][used->id] = -1;
        Slot& s = slots_[i];
        ASSIGN_OR_RETURN(bool finished, Continue(op, s));
        if (!finished) continue;
        if (stopping) {
          --busy;
        } else {
          ++done;
          RETURN_IF_ERROR(Begin(op, s));
        }
      }
    }
    RETURN_IF_ERROR(submit());
    now = absl::Now();
    if (!stopping && now >= end) stopping = true;
    if (now > deadline_for_stuck) {
      return absl::DeadlineExceededError(
          absl::StrCat(OpName(op), " x", inflight, ": requests never completed, ", busy, " left"));
    }
  }
  *all = done + inflight;
  return done / absl::ToDoubleSeconds(span);
}

// CPU time of `pid` and its descendants (QEMU 7.2's virtiofsd serves from a child it forks
// into its namespace sandbox).
absl::Duration TreeCpuTime(pid_t pid) {
  absl::Duration total = ProcessCpuTime(pid);
  std::ifstream children(absl::StrCat("/proc/", pid, "/task/", pid, "/children"));
  for (pid_t child; children >> child;) total += TreeCpuTime(child);
  return total;
}

double CpuSeconds(const rusage& u) {
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// An operation at one in-flight count: operations per second, and the CPU time they took (the
// daemon's, all its threads; direct: the threads') per operation.
struct Cell {
  double rate = 0;
  double cpu_us = 0;
};

// The same operations as plain syscalls by `threads` threads on CPU 0.
Cell RunDirect(Op op, int threads, const std::string& cache, const std::string& scratch,
               absl::Duration span) {
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> total{0}, seq{0}, names{0};
  const int big = open((cache + "/big").c_str(), O_RDWR | O_CLOEXEC);
  const int cache_fd = open(cache.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  const int scratch_fd = open(scratch.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  const std::string dir = cache + "/dir100k";
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      PinTo(0);
      std::vector<char> buffer(1 << 20, 0x5a);
      std::mt19937_64 rng(t);
      uint64_t n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        switch (op) {
          case Op::kCreate: {
            const std::string name = absl::StrCat("d", names.fetch_add(1));
            close(openat(scratch_fd, name.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644));
            break;
          }
          case Op::kStat: {
            struct stat st;
            fstatat(cache_fd, "big", &st, 0);
            break;
          }
          case Op::kReaddir: {
            const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            while (syscall(SYS_getdents64, fd, buffer.data(), kDirBuffer) > 0) {
            }
            close(fd);
            break;
          }
          case Op::kRandRead:
            if (pread(big, buffer.data(), 4096, (rng() % (kBigFile / 4096)) * 4096) < 0) return;
            break;
          case Op::kSeqRead:
            if (pread(big, buffer.data(), 1 << 20, seq.fetch_add(1 << 20) % kBigFile) < 0) return;
            break;
          case Op::kSeqWrite:
            if (pwrite(big, buffer.data(), 1 << 20, seq.fetch_add(1 << 20) % kBigFile) < 0) return;
            break;
        }
        ++n;
      }
      total += n;
    });
  }
  // The measured window: the threads run freely for `span`, then are told to stop. The front
  // end's thread sleeps meanwhile: the process's CPU time is theirs.
  rusage before, after;
  getrusage(RUSAGE_SELF, &before);
  const absl::Time start = absl::Now();
  absl::SleepFor(span);
  stop = true;
  for (auto& t : pool) t.join();
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  getrusage(RUSAGE_SELF, &after);
  close(big);
  close(cache_fd);
  close(scratch_fd);
  return {total / seconds,
          (CpuSeconds(after) - CpuSeconds(before)) * 1e6 / std::max<uint64_t>(total, 1)};
}

int TheirPool() { return FLAGS_their_pool >= 0 ? FLAGS_their_pool : std::min(FLAGS_pool, 1); }

using Table = std::vector<std::vector<Cell>>;  // [op][inflight index]

// Every operation at every in-flight count against one daemon (ours or virtiofsd).
absl::StatusOr<Table> MeasureConcurrent(bool ours, const std::vector<int>& inflight) {
  const std::string& cache = FLAGS_cache_dir;
  const std::string scratch_name =
      absl::StrCat("scratch-", ours ? "ours" : "virtiofsd", "-", getpid());
  const std::string scratch = cache + "/" + scratch_name;
  mkdir(scratch.c_str(), 0755);
  ASSIGN_OR_RETURN(auto session, DaemonSession::Create("fs-bench"));
  const std::string& socket = session->socket();
  const std::string pool = absl::StrCat("--thread-pool-size=", ours ? FLAGS_pool : TheirPool());
  std::vector<std::string> args;
  if (ours) {
    args = {"-c",
            "0",
            RunfilePath("vhost-user-fs/vhost-user-fs"),
            "--socket-path=" + socket,
            "--shared-dir=" + cache,
            "--cache=auto",
            pool,
            absl::StrCat("--num-request-queues=", std::max(1, FLAGS_queues))};
    if (!FLAGS_ours_extra.empty()) args.push_back(FLAGS_ours_extra);
  } else {
    args = {"-c",
            "0",
            FLAGS_virtiofsd,
            "--socket-path=" + socket,
            "-o",
            "source=" + cache,
            "-o",
            "cache=auto",
            pool};
  }
  RETURN_IF_ERROR(session->Start("taskset", args));
  // QEMU 7.2's virtiofsd serves one request queue (it offers the high-priority queue and one
  // more), so it gets one; ours gets --queues.
  const int queues = ours ? std::max(1, FLAGS_queues) : 1;
  int most = 1;
  for (int k : inflight) most = std::max(most, k);
  ASSIGN_OR_RETURN(auto client, ConcurrentClient::Start(socket, queues, most));
  auto lookup = [&](uint64_t parent, const std::string& name) -> absl::StatusOr<uint64_t> {
    ASSIGN_OR_RETURN(std::string body, client->Call(FUSE_LOOKUP, parent, nullptr, 0, name));
    fuse_entry_out entry{};
    std::memcpy(&entry, body.data(), std::min(body.size(), sizeof(entry)));
    return entry.nodeid;
  };
  ASSIGN_OR_RETURN(client->scratch, lookup(kRoot, scratch_name));
  ASSIGN_OR_RETURN(client->dir, lookup(kRoot, "dir100k"));
  ASSIGN_OR_RETURN(client->big, lookup(kRoot, "big"));
  fuse_open_in open{};
  open.flags = O_RDWR;
  ASSIGN_OR_RETURN(std::string body, client->Call(FUSE_OPEN, client->big, &open, sizeof(open)));
  fuse_open_out opened{};
  std::memcpy(&opened, body.data(), std::min(body.size(), sizeof(opened)));
  client->big_fh = opened.fh;
  const pid_t pid = session->daemon()->pid();
  Table t(ops.size());
  for (size_t o = 0; o < ops.size(); ++o) {
    for (int k : inflight) {
      const absl::Duration cpu = TreeCpuTime(pid);
      uint64_t all = 0;
      ASSIGN_OR_RETURN(double rate, client->Run(ops[o], k, absl::Seconds(FLAGS_seconds), &all));
      t[o].push_back({rate, absl::ToDoubleMicroseconds(TreeCpuTime(pid) - cpu) / all});
    }
  }
  client.reset();
  std::filesystem::remove_all(scratch);
  return t;
}

Table MeasureDirect(const std::vector<int>& inflight) {
  const std::string scratch = absl::StrCat(FLAGS_cache_dir, "/scratch-direct-", getpid());
  mkdir(scratch.c_str(), 0755);
  Table t(ops.size());
  for (size_t o = 0; o < ops.size(); ++o) {
    for (int k : inflight) {
      t[o].push_back(RunDirect(ops[o], k, FLAGS_cache_dir, scratch, absl::Seconds(FLAGS_seconds)));
    }
  }
  std::filesystem::remove_all(scratch);
  return t;
}

std::string Rate(double v) {
  if (v >= 1e6) return absl::StrFormat("%.2f M", v / 1e6);
  if (v >= 1e4) return absl::StrFormat("%.1f k", v / 1e3);
  return absl::StrFormat("%.0f", v);
}

int ConcurrencyMain() {
  PinTo(1);  // the front end; daemons and direct threads on CPU 0
  std::vector<int> inflight;
  for (absl::string_view part : absl::StrSplit(FLAGS_inflight, ',')) {
    int k = 0;
    if (!absl::SimpleAtoi(part, &k) || k < 1 || k > 64) {
      std::fprintf(stderr, "--inflight: counts from 1 to 64, comma-separated\n");
      return 2;
    }
    inflight.push_back(k);
  }
  for (Op op : kOps) {
    if (FLAGS_ops.empty() || absl::c_linear_search(absl::StrSplit(FLAGS_ops, ','), OpFlag(op))) {
      ops.push_back(op);
    }
  }
  if (ops.empty()) {
    std::fprintf(stderr, "--ops: none of create, stat, readdir, randread, seqread, seqwrite\n");
    return 2;
  }
  if (absl::Status s = PrepareCache(FLAGS_cache_dir); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  std::vector<Table> runs[3];  // ours, virtiofsd, direct
  for (int i = 0; i < FLAGS_repeat; ++i) {
    for (bool mine : {true, false}) {
      absl::StatusOr<Table> t = MeasureConcurrent(mine, inflight);
      if (!t.ok()) {
        std::fprintf(stderr, "%s: %s\n", mine ? "vhost-user-fs" : "virtiofsd",
                     t.status().ToString().c_str());
        return 1;
      }
      runs[mine ? 0 : 1].push_back(*t);
    }
    runs[2].push_back(MeasureDirect(inflight));
  }
  std::printf(
      "ops/s; ours: %d request queue(s), --thread-pool-size=%d; virtiofsd: 1 request "
      "queue, --thread-pool-size=%d; direct: threads on CPU 0\n",
      FLAGS_queues, FLAGS_pool, TheirPool());
  std::printf(
      "CPU us/op: the daemon's CPU time (all its threads; ours includes its queue worker's busy "
      "polling, --ours_extra=--poll-us=0 for none) per operation; direct: its threads'\n");
  std::printf("%-13s %8s %10s %10s %10s %9s %9s %9s %9s %9s\n", "operation", "inflight", "ours",
              "virtiofsd", "direct", "ours/vfsd", "ours/dir", "us ours", "us vfsd", "us dir");
  for (size_t o = 0; o < ops.size(); ++o) {
    for (size_t k = 0; k < inflight.size(); ++k) {
      double m[3], cpu[3];
      for (int w = 0; w < 3; ++w) {
        std::vector<double> v, c;
        for (const Table& t : runs[w]) {
          v.push_back(t[o][k].rate);
          c.push_back(t[o][k].cpu_us);
        }
        m[w] = Median(v);
        cpu[w] = Median(c);
      }
      std::printf("%-13s %8d %10s %10s %10s %8.2fx %8.2fx %9.1f %9.1f %9.1f\n", OpName(ops[o]),
                  inflight[k], Rate(m[0]).c_str(), Rate(m[1]).c_str(), Rate(m[2]).c_str(),
                  m[0] / m[1], m[0] / m[2], cpu[0], cpu[1], cpu[2]);
    }
  }
  return 0;
}

int Main() {
  if (!FLAGS_inflight.empty()) return ConcurrencyMain();
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

// vhost-user-fs driven over its socket by our front end speaking FUSE (FuseClient): data through
// guest memory with checksums, host-side changes seen by the guest, FORGET on the high-priority
// queue, and hostile requests.
#include <dirent.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/testing/kernel_locks.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "tests/frontend/daemon_fixture.h"
#include "tests/frontend/fuse_client.h"
#include "tests/integration/runfiles.h"

namespace vhost {
namespace {

using frontend::DaemonSession;
using frontend::FuseClient;
using testing::StatusIs;

constexpr uint64_t kRoot = 1;

std::vector<std::string> ListDirectory(const std::string& path) {
  std::vector<std::string> names;
  DIR* d = opendir(path.c_str());
  if (d == nullptr) return names;
  while (dirent* e = readdir(d)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
      names.push_back(e->d_name);
    }
  }
  closedir(d);
  return names;
}

std::string ReadLink(const std::string& path) {
  char target[4096];
  const ssize_t n = readlink(path.c_str(), target, sizeof(target));
  return n < 0 ? "?" : std::string(target, n);
}

// The mnt_id line of a /proc/PID/fdinfo/N file.
std::string MountId(const std::string& fdinfo) {
  std::ifstream f(fdinfo);
  for (std::string line; std::getline(f, line);) {
    if (line.rfind("mnt_id:", 0) == 0) return line;
  }
  return "none";
}

// A descriptor of ours on our /proc (for its mount id), open for the test's lifetime.
int UniqueFdOfProc() {
  static const int fd = open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
  return fd;
}

class FsDaemonTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(session_, DaemonSession::Create("fs"));
    shared_ = session_->File("shared");
    mkdir(shared_.c_str(), 0755);
    std::ofstream(shared_ + "/host.txt") << "from the host";
    ASSERT_OK(session_->Start(RunfilePath("vhost-user-fs/vhost-user-fs"),
                              {"--socket-path=" + session_->socket(), "--shared-dir=" + shared_,
                               absl::StrCat("--thread-pool-size=", GetParam())}));
    ASSERT_OK_AND_ASSIGN(
        fs_, FuseClient::Start(session_->socket(), /*busy_poll=*/false, Bit(kProtocolDeviceState)));
  }
  pid_t daemon_pid() { return session_->daemon()->pid(); }

  std::unique_ptr<DaemonSession> session_;
  std::string shared_;
  std::unique_ptr<FuseClient> fs_;
};

TEST_P(FsDaemonTest, LargeFileRoundTripWithChecksums) {
  EXPECT_EQ(fs_->init().max_write, 1u << 20);
  ASSERT_OK_AND_ASSIGN(auto created, fs_->Create(kRoot, "big"));
  std::mt19937 gen(1);
  std::string data(4 << 20, '\0');
  for (char& c : data) c = static_cast<char>(gen());
  for (size_t off = 0; off < data.size(); off += 1 << 20) {
    ASSERT_OK_AND_ASSIGN(uint32_t n,
                         fs_->Write(created.first, created.second, off, data.substr(off, 1 << 20)));
    EXPECT_EQ(n, 1u << 20);
  }
  ASSERT_OK(fs_->Release(created.first, created.second));
  std::ifstream host(shared_ + "/big", std::ios::binary);
  std::string on_host((std::istreambuf_iterator<char>(host)), {});
  EXPECT_TRUE(on_host == data);
  ASSERT_OK_AND_ASSIGN(uint64_t fh, fs_->Open(created.first, O_RDONLY));
  std::string back;
  for (size_t off = 0; off < data.size(); off += 1 << 20) {
    ASSERT_OK_AND_ASSIGN(std::string chunk, fs_->Read(created.first, fh, off, 1 << 20));
    back += chunk;
  }
  EXPECT_TRUE(back == data);
  ASSERT_OK_AND_ASSIGN(fuse_attr attr, fs_->GetAttr(created.first));
  EXPECT_EQ(attr.size, data.size());
}

TEST_P(FsDaemonTest, HostChangesAreSeenAndRenamesKeepTheInode) {
  ASSERT_OK_AND_ASSIGN(fuse_entry_out host_file, fs_->Lookup(kRoot, "host.txt"));
  ASSERT_OK_AND_ASSIGN(uint64_t fh, fs_->Open(host_file.nodeid, O_RDONLY));
  ASSERT_OK_AND_ASSIGN(std::string content, fs_->Read(host_file.nodeid, fh, 0, 100));
  EXPECT_EQ(content, "from the host");
  // Renamed on the host under the guest's feet: the node still is the file.
  mkdir((shared_ + "/sub").c_str(), 0755);
  ASSERT_EQ(rename((shared_ + "/host.txt").c_str(), (shared_ + "/sub/moved.txt").c_str()), 0);
  std::ofstream(shared_ + "/sub/moved.txt", std::ios::app) << " and more";
  ASSERT_OK_AND_ASSIGN(fuse_attr attr, fs_->GetAttr(host_file.nodeid));
  EXPECT_EQ(attr.size, std::strlen("from the host and more"));
  EXPECT_THAT(fs_->Lookup(kRoot, "host.txt").status(), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK_AND_ASSIGN(fuse_entry_out sub, fs_->Lookup(kRoot, "sub"));
  ASSERT_OK_AND_ASSIGN(fuse_entry_out moved, fs_->Lookup(sub.nodeid, "moved.txt"));
  EXPECT_EQ(moved.nodeid, host_file.nodeid);
}

TEST_P(FsDaemonTest, ForgetOnTheHighPriorityQueue) {
  ASSERT_OK_AND_ASSIGN(fuse_entry_out e, fs_->Lookup(kRoot, "host.txt"));
  ASSERT_OK(fs_->Forget(e.nodeid, 1));
  // The forget and the next request travel on different queues: give it a moment.
  absl::Status status;
  for (int i = 0; i < 100; ++i) {
    status = fs_->GetAttr(e.nodeid).status();
    if (!status.ok()) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_FALSE(status.ok());
}

TEST_P(FsDaemonTest, HostileRequests) {
  // Shorter than a FUSE header.
  ASSERT_OK_AND_ASSIGN(fuse_out_header out, fs_->CallRaw(std::string(10, 'x'), 100));
  EXPECT_EQ(out.error, -EINVAL);
  // A header claiming more than was sent.
  fuse_in_header in{};
  in.opcode = FUSE_GETATTR;
  in.unique = 77;
  in.nodeid = kRoot;
  in.len = 100000;
  ASSERT_OK_AND_ASSIGN(
      out, fs_->CallRaw(
               std::string(reinterpret_cast<char*>(&in), sizeof(in)) + std::string(16, '\0'), 200));
  EXPECT_EQ(out.error, -EINVAL);
  EXPECT_EQ(out.unique, 77u);
  // Unknown opcode, unknown node, escapes, a name with '/'.
  EXPECT_THAT(fs_->Call(4321, kRoot, "").status(), StatusIs(absl::StatusCode::kUnimplemented));
  EXPECT_FALSE(fs_->GetAttr(987654).ok());
  ASSERT_OK_AND_ASSIGN(fuse_entry_out up, fs_->Lookup(kRoot, ".."));
  EXPECT_EQ(up.nodeid, kRoot);
  EXPECT_THAT(fs_->Lookup(kRoot, "../etc").status(), StatusIs(absl::StatusCode::kInvalidArgument));
  // A handle never opened.
  EXPECT_FALSE(fs_->Read(kRoot, 999, 0, 10).ok());
  EXPECT_TRUE(session_->daemon()->IsAlive());
  ASSERT_OK_AND_ASSIGN(fuse_entry_out still, fs_->Lookup(kRoot, "host.txt"));
  EXPECT_NE(still.nodeid, 0u);
}

TEST_P(FsDaemonTest, NamespaceSandboxRootIsTheSharedDirectory) {
  // The default --sandbox=namespace: the daemon's root directory is the shared one.
  const std::string root = absl::StrCat("/proc/", daemon_pid(), "/root/host.txt");
  std::ifstream f(root);
  std::string content((std::istreambuf_iterator<char>(f)), {});
  EXPECT_EQ(content, "from the host");
  EXPECT_FALSE(std::ifstream(absl::StrCat("/proc/", daemon_pid(), "/root/etc/passwd")).good());
}

// Under the sandbox and seccomp policy in force: a FIFO is never opened (the daemon answers the
// next request), MKNOD of a device node is refused, and a write clears setuid (fchmod allowed).
TEST_P(FsDaemonTest, SpecialFilesAndSetuidBits) {
  ASSERT_EQ(mkfifo((shared_ + "/fifo").c_str(), 0666), 0);
  std::ofstream(shared_ + "/suid") << "x";
  ASSERT_EQ(chmod((shared_ + "/suid").c_str(), 04755), 0);
  ASSERT_OK_AND_ASSIGN(fuse_entry_out fifo, fs_->Lookup(kRoot, "fifo"));
  const absl::StatusCode nxio = absl::ErrnoToStatus(ENXIO, "").code();
  EXPECT_THAT(fs_->Open(fifo.nodeid, O_RDONLY).status(), StatusIs(nxio));
  EXPECT_THAT(fs_->Open(fifo.nodeid, O_WRONLY).status(), StatusIs(nxio));
  fuse_mknod_in mknod{};
  mknod.mode = S_IFCHR | 0600;
  mknod.rdev = (1 << 8) | 3;  // 1:3, /dev/null
  EXPECT_THAT(fs_->Call(FUSE_MKNOD, kRoot,
                        std::string(reinterpret_cast<char*>(&mknod), sizeof(mknod)) + "null" +
                            std::string(1, '\0'))
                  .status(),
              StatusIs(absl::StatusCode::kPermissionDenied));
  struct stat st;
  EXPECT_NE(lstat((shared_ + "/null").c_str(), &st), 0);
  ASSERT_OK_AND_ASSIGN(fuse_entry_out suid, fs_->Lookup(kRoot, "suid"));
  ASSERT_OK_AND_ASSIGN(uint64_t fh, fs_->Open(suid.nodeid, O_RDWR));
  ASSERT_OK_AND_ASSIGN(uint32_t n, fs_->Write(suid.nodeid, fh, 0, "y"));
  EXPECT_EQ(n, 1u);
  ASSERT_EQ(stat((shared_ + "/suid").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  EXPECT_TRUE(session_->daemon()->IsAlive());
  ASSERT_OK_AND_ASSIGN(fuse_attr attr, fs_->GetAttr(kRoot));
  EXPECT_TRUE(S_ISDIR(attr.mode));
}

// Each queue's own thread, and a pool of 4 threads.
// The FUSE session of one daemon process carried to another over the same directory, as QEMU
// does in a live migration: both sandboxed, the source saves with its queues stopped, the
// destination loads before they start again; node ids and file handles go on working there.
absl::StatusOr<std::string> SaveSession(FuseClient& fs) {
  std::string state;
  RETURN_IF_ERROR(fs.WhileStopped([&](frontend::Frontend& f) -> absl::Status {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return absl::ErrnoToStatus(errno, "pipe2");
    UniqueFd read_end(p[0]), write_end(p[1]);
    ASSIGN_OR_RETURN(auto reply, f.SetDeviceStateFd(kTransferSave, write_end.get()));
    write_end.Reset();  // the back end holds its own copy: its close is the end of the state
    if (reply.value != kDeviceStateNoFd) return absl::InternalError("SET_DEVICE_STATE_FD refused");
    char buf[65536];
    ssize_t n;
    while ((n = read(read_end.get(), buf, sizeof(buf))) > 0) state.append(buf, n);
    ASSIGN_OR_RETURN(uint64_t checked, f.CheckDeviceState());
    if (checked != 0) return absl::InternalError("CHECK_DEVICE_STATE failed");
    return absl::OkStatus();
  }));
  return state;
}

// Loads `state`; returns CHECK_DEVICE_STATE's answer.
absl::StatusOr<uint64_t> LoadSession(FuseClient& fs, const std::string& state) {
  uint64_t checked = ~uint64_t{0};
  RETURN_IF_ERROR(fs.WhileStopped([&](frontend::Frontend& f) -> absl::Status {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return absl::ErrnoToStatus(errno, "pipe2");
    UniqueFd read_end(p[0]), write_end(p[1]);
    ASSIGN_OR_RETURN(auto reply, f.SetDeviceStateFd(kTransferLoad, read_end.get()));
    read_end.Reset();
    if (reply.value != kDeviceStateNoFd) return absl::InternalError("SET_DEVICE_STATE_FD refused");
    for (size_t done = 0; done < state.size();) {
      const ssize_t n = write(write_end.get(), state.data() + done, state.size() - done);
      if (n <= 0) return absl::ErrnoToStatus(errno, "writing the state");
      done += n;
    }
    write_end.Reset();
    ASSIGN_OR_RETURN(checked, f.CheckDeviceState());
    return absl::OkStatus();
  }));
  return checked;
}

TEST_P(FsDaemonTest, TheSessionMovesToAnotherDaemonProcess) {
  ASSERT_OK_AND_ASSIGN(auto created, fs_->Create(kRoot, "moving.txt"));
  ASSERT_OK(fs_->Write(created.first, created.second, 0, "before|").status());
  ASSERT_OK_AND_ASSIGN(fuse_entry_out host_file, fs_->Lookup(kRoot, "host.txt"));
  ASSERT_OK_AND_ASSIGN(uint64_t host_fh, fs_->Open(host_file.nodeid, O_RDONLY));
  ASSERT_OK_AND_ASSIGN(std::string state, SaveSession(*fs_));
  EXPECT_NE(state.find("moving.txt"), std::string::npos);
  // The source serves on (a migration that fails leaves the guest there).
  ASSERT_OK_AND_ASSIGN(std::string at_source, fs_->Read(created.first, created.second, 0, 100));
  EXPECT_EQ(at_source, "before|");

  ASSERT_OK_AND_ASSIGN(auto session, DaemonSession::Create("fs-dest"));
  ASSERT_OK(session->Start(RunfilePath("vhost-user-fs/vhost-user-fs"),
                           {"--socket-path=" + session->socket(), "--shared-dir=" + shared_,
                            absl::StrCat("--thread-pool-size=", GetParam())}));
  ASSERT_OK_AND_ASSIGN(auto dest,
                       FuseClient::Start(session->socket(), false, Bit(kProtocolDeviceState)));
  ASSERT_OK_AND_ASSIGN(uint64_t checked, LoadSession(*dest, state));
  EXPECT_EQ(checked, 0u);
  // The same handles and node ids, on the other process.
  ASSERT_OK_AND_ASSIGN(uint32_t written, dest->Write(created.first, created.second, 7, "after"));
  EXPECT_EQ(written, 5u);
  ASSERT_OK_AND_ASSIGN(std::string back, dest->Read(created.first, created.second, 0, 100));
  EXPECT_EQ(back, "before|after");
  ASSERT_OK_AND_ASSIGN(std::string host, dest->Read(host_file.nodeid, host_fh, 0, 100));
  EXPECT_EQ(host, "from the host");
  ASSERT_OK_AND_ASSIGN(fuse_entry_out again, dest->Lookup(kRoot, "moving.txt"));
  EXPECT_EQ(again.nodeid, created.first);

  // A hostile state: refused with CHECK_DEVICE_STATE failing; the daemon and its session stay.
  std::string bad = state;
  bad[4] = 9;  // the version
  ASSERT_OK_AND_ASSIGN(checked, LoadSession(*dest, bad));
  EXPECT_NE(checked, 0u);
  ASSERT_OK_AND_ASSIGN(checked, LoadSession(*dest, state.substr(0, state.size() - 3)));
  EXPECT_NE(checked, 0u);
  EXPECT_TRUE(session->daemon()->IsAlive());
  ASSERT_OK_AND_ASSIGN(back, dest->Read(created.first, created.second, 0, 100));
  EXPECT_EQ(back, "before|after");
}

INSTANTIATE_TEST_SUITE_P(ThreadPool, FsDaemonTest, ::testing::Values(0, 4));

// A user namespace can only be entered by a single-threaded process: the queue workers and the
// pool's threads (--thread-pool-size) start after the sandbox, with the first queue.
class FsUnprivilegedTest : public ::testing::TestWithParam<int> {};

TEST_P(FsUnprivilegedTest, UserNamespaceSandboxAsNobody) {
  ASSERT_OK_AND_ASSIGN(auto session, DaemonSession::Create("fs-nobody"));
  chmod(session->dir().c_str(), 0777);
  const std::string shared = session->File("shared");
  mkdir(shared.c_str(), 0755);
  ASSERT_EQ(chown(shared.c_str(), 65534, 65534), 0);
  // The runfiles tree may not be readable by nobody: a copy of the binary is.
  const std::string binary = session->File("vhost-user-fs");
  {
    std::ifstream in(RunfilePath("vhost-user-fs/vhost-user-fs"), std::ios::binary);
    std::ofstream out(binary, std::ios::binary);
    out << in.rdbuf();
  }
  chmod(binary.c_str(), 0755);
  ASSERT_OK(
      session->Start("setpriv", {"--reuid=65534", "--regid=65534", "--clear-groups", binary,
                                 "--socket-path=" + session->socket(), "--shared-dir=" + shared,
                                 absl::StrCat("--thread-pool-size=", GetParam())}));
  ASSERT_OK_AND_ASSIGN(auto fs, FuseClient::Start(session->socket()));
  ASSERT_OK_AND_ASSIGN(auto created, fs->Create(kRoot, "made-by-guest"));
  ASSERT_OK_AND_ASSIGN(uint32_t n, fs->Write(created.first, created.second, 0, "data"));
  EXPECT_EQ(n, 4u);
  struct stat st;
  ASSERT_EQ(stat((shared + "/made-by-guest").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 65534u);  // the guest's root is nobody on the host
  EXPECT_EQ(st.st_size, 4);
}

INSTANTIATE_TEST_SUITE_P(ThreadPool, FsUnprivilegedTest, ::testing::Values(0, 2));

// What the daemon keeps open is opened inside its sandbox: from every directory it holds,
// ".." leads at most up to the shared directory, or nowhere (its /proc/self/fd, a detached
// mount of just that directory), never to the host's tree or the host's procfs. `chroot`: the
// shared directory is the daemon's root by chroot(), its own ".." only for the daemon; seen
// from here it has a parent, so a descriptor of it is taken as it is.
void ExpectKeptDirectoriesInside(pid_t pid, const std::string& shared, bool chroot = false) {
  struct stat share;
  ASSERT_EQ(stat(shared.c_str(), &share), 0);
  const std::string fds = absl::StrCat("/proc/", pid, "/fd");
  const std::vector<std::string> names = ListDirectory(fds);
  ASSERT_FALSE(names.empty());
  int directories = 0;
  for (const std::string& name : names) {
    std::string path = fds + "/" + name;
    struct stat st;
    if (stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) continue;
    ++directories;
    if (chroot && st.st_dev == share.st_dev && st.st_ino == share.st_ino) continue;
    // Up until ".." stays where it is.
    struct stat top = st;
    for (int depth = 0; depth < 64; ++depth) {
      struct stat up;
      ASSERT_EQ(stat((path + "/..").c_str(), &up), 0) << path;
      if (up.st_dev == top.st_dev && up.st_ino == top.st_ino) break;
      path += "/..";
      top = up;
    }
    const bool at_share = top.st_dev == share.st_dev && top.st_ino == share.st_ino;
    const bool no_parent = top.st_dev == st.st_dev && top.st_ino == st.st_ino;
    EXPECT_TRUE(at_share || no_parent)
        << "fd " << name << " (" << ReadLink(fds + "/" + name) << ") leads up to " << path;
    if (!at_share) {  // then the daemon's own fd directory, on a mount that is not our /proc
      EXPECT_NE(MountId(absl::StrCat("/proc/", pid, "/fdinfo/", name)),
                MountId("/proc/self/fdinfo/" + std::to_string(UniqueFdOfProc())))
          << "fd " << name;
    }
  }
  EXPECT_GE(directories, 2);  // the shared directory and /proc/self/fd at least
}

TEST_P(FsDaemonTest, KeptDirectoriesLeadNowhereOutsideTheShare) {
  ExpectKeptDirectoriesInside(daemon_pid(), shared_);
}

TEST(FsChrootTest, KeptDirectoriesLeadNowhereOutsideTheShare) {
  ASSERT_OK_AND_ASSIGN(auto session, DaemonSession::Create("fs-chroot"));
  const std::string shared = session->File("shared");
  mkdir(shared.c_str(), 0755);
  ASSERT_OK(session->Start(
      RunfilePath("vhost-user-fs/vhost-user-fs"),
      {"--socket-path=" + session->socket(), "--shared-dir=" + shared, "--sandbox=chroot"}));
  ASSERT_OK_AND_ASSIGN(auto fs, FuseClient::Start(session->socket()));
  ASSERT_OK_AND_ASSIGN(fuse_entry_out up, fs->Lookup(kRoot, ".."));
  EXPECT_EQ(up.nodeid, kRoot);
  ExpectKeptDirectoriesInside(session->daemon()->pid(), shared, /*chroot=*/true);
}

// A guest kernel before 5.17 (FUSE 7.31: Debian 11's 5.10) sends the 16-byte FUSE_INIT and
// reads a reply of its own minor; the share is then used as that kernel would.
TEST(FsOldClientTest, Protocol731ClientMountsAndUsesTheShare) {
  ASSERT_OK_AND_ASSIGN(auto session, DaemonSession::Create("fs-731"));
  const std::string shared = session->File("shared");
  mkdir(shared.c_str(), 0755);
  std::ofstream(shared + "/host.txt") << "from the host";
  ASSERT_OK(session->Start(RunfilePath("vhost-user-fs/vhost-user-fs"),
                           {"--socket-path=" + session->socket(), "--shared-dir=" + shared,
                            "--cache=always", "--announce-submounts"}));
  ASSERT_OK_AND_ASSIGN(auto fs, FuseClient::Start(session->socket(), /*busy_poll=*/false,
                                                  /*protocol_features=*/0, /*minor=*/31));
  EXPECT_EQ(fs->init().major, 7u);
  EXPECT_EQ(fs->init().minor, 31u);
  EXPECT_EQ(fs->init().flags & (FUSE_INIT_EXT | FUSE_SUBMOUNTS), 0u);  // never offered
  EXPECT_EQ(fs->init().flags2, 0u);
  EXPECT_TRUE(fs->init().flags & FUSE_DO_READDIRPLUS);
  EXPECT_TRUE(fs->init().flags & FUSE_MAX_PAGES);
  EXPECT_EQ(fs->init().max_write, 1u << 20);

  ASSERT_OK_AND_ASSIGN(fuse_entry_out host, fs->Lookup(kRoot, "host.txt"));
  EXPECT_EQ(host.attr.size, 13u);
  ASSERT_OK_AND_ASSIGN(auto created, fs->Create(kRoot, "guest.txt"));
  ASSERT_OK_AND_ASSIGN(uint32_t n, fs->Write(created.first, created.second, 0, "from the guest"));
  EXPECT_EQ(n, 14u);
  ASSERT_OK_AND_ASSIGN(std::string back, fs->Read(created.first, created.second, 5, 100));
  EXPECT_EQ(back, "the guest");
  ASSERT_OK(fs->Release(created.first, created.second));
  ASSERT_OK_AND_ASSIGN(fuse_attr attr, fs->GetAttr(created.first));
  EXPECT_EQ(attr.size, 14u);
  std::ifstream on_host(shared + "/guest.txt");
  EXPECT_EQ(std::string((std::istreambuf_iterator<char>(on_host)), {}), "from the guest");

  // READDIR; FOPEN_CACHE_DIR (--cache=always) is 7.28's, so a 7.31 client gets it.
  fuse_open_in open{};
  open.flags = O_RDONLY | O_DIRECTORY;
  ASSERT_OK_AND_ASSIGN(
      std::string opened,
      fs->Call(FUSE_OPENDIR, kRoot, std::string(reinterpret_cast<char*>(&open), sizeof(open))));
  fuse_open_out dir{};
  std::memcpy(&dir, opened.data(), std::min(sizeof(dir), opened.size()));
  EXPECT_TRUE(dir.open_flags & FOPEN_CACHE_DIR);
  fuse_read_in read{};
  read.fh = dir.fh;
  read.size = 4096;
  std::vector<std::string> names;
  for (;;) {
    ASSERT_OK_AND_ASSIGN(
        std::string entries,
        fs->Call(FUSE_READDIR, kRoot, std::string(reinterpret_cast<char*>(&read), sizeof(read))));
    if (entries.empty()) break;
    for (size_t at = 0; at + FUSE_NAME_OFFSET <= entries.size();) {
      fuse_dirent d;
      std::memcpy(&d, entries.data() + at, FUSE_NAME_OFFSET);
      ASSERT_LE(at + FUSE_DIRENT_SIZE(&d), entries.size());
      names.push_back(entries.substr(at + FUSE_NAME_OFFSET, d.namelen));
      read.offset = d.off;
      at += FUSE_DIRENT_SIZE(&d);
    }
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{".", "..", "guest.txt", "host.txt"}));
  fuse_release_in release{};
  release.fh = dir.fh;
  ASSERT_OK(fs->Call(FUSE_RELEASEDIR, kRoot,
                     std::string(reinterpret_cast<char*>(&release), sizeof(release)))
                .status());
}

// --posix-lock: a front end that goes away while the guest's SETLKW waits for a lock a host
// process holds does not hold the daemon up: it serves the next front end and exits on SIGTERM.
TEST(FsLockTest, DisconnectWhileASetlkwWaits) {
  ASSERT_OK_AND_ASSIGN(auto session, DaemonSession::Create("fs-lock"));
  const std::string shared = session->File("shared");
  mkdir(shared.c_str(), 0755);
  std::ofstream(shared + "/locked") << "data";
  struct stat st;
  ASSERT_EQ(stat((shared + "/locked").c_str(), &st), 0);
  const int host_fd = open((shared + "/locked").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(host_fd, 0);
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  ASSERT_EQ(fcntl(host_fd, F_OFD_SETLK, &fl), 0);
  ASSERT_OK(session->Start(RunfilePath("vhost-user-fs/vhost-user-fs"),
                           {"--socket-path=" + session->socket(), "--shared-dir=" + shared,
                            "--posix-lock", "--thread-pool-size=2"}));
  // The first front end, in a process of its own that is killed while its SETLKW waits.
  const pid_t front_end = fork();
  ASSERT_GE(front_end, 0);
  if (front_end == 0) {
    auto fs = FuseClient::Start(session->socket());
    if (!fs.ok()) _exit(2);
    auto entry = (*fs)->Lookup(kRoot, "locked");
    if (!entry.ok()) _exit(3);
    fuse_lk_in in{};
    in.owner = 1;
    in.lk = {0, static_cast<uint64_t>(INT64_MAX), F_WRLCK, 0};
    (void)(*fs)->Call(FUSE_SETLKW, entry->nodeid,
                      std::string(reinterpret_cast<char*>(&in), sizeof(in)));
    _exit(4);
  }
  // Its lock request waits in the host kernel (the daemon's thread waits there).
  ASSERT_TRUE(testing::AwaitLockWaiters(st.st_ino, 1, absl::Seconds(10)));
  kill(front_end, SIGKILL);
  int status;
  ASSERT_EQ(waitpid(front_end, &status, 0), front_end);
  // The next front end is served; the guest's wait is over, the host's lock untouched.
  ASSERT_OK_AND_ASSIGN(auto fs, FuseClient::Start(session->socket()));
  ASSERT_OK_AND_ASSIGN(fuse_entry_out entry, fs->Lookup(kRoot, "locked"));
  EXPECT_NE(entry.nodeid, 0u);
  EXPECT_EQ(testing::LockWaiters(st.st_ino), 0);
  fs.reset();
  ASSERT_OK(session->daemon()->Signal(SIGTERM));
  ASSERT_OK_AND_ASSIGN(int exit_status, session->daemon()->Wait(absl::Seconds(30)));
  EXPECT_TRUE(WIFEXITED(exit_status) && WEXITSTATUS(exit_status) == 0) << exit_status;
  close(host_fd);
}

}  // namespace
}  // namespace vhost

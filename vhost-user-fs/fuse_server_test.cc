// The FUSE server against a temporary directory, with requests built in memory as the Linux
// client lays them out: the operations, and hostile requests (malformed headers, lengths beyond
// the buffers, names with '/', ".." at the root, symlinks pointing out, unknown handles).
#include "vhost-user-fs/fuse_server.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "vhost-user-fs/fs_device.h"

namespace vhost {
namespace {

// A mkdtemp/mkstemp template in the test's own directory ($TEST_TMPDIR; /tmp outside Bazel).
// rm -rf: the tests' directories hold files of other owners and modes.
void RemoveTree(const std::string& dir) {
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
}

std::string TempTemplate(const std::string& name) {
  const char* dir = getenv("TEST_TMPDIR");
  return std::string(dir != nullptr && *dir != '\0' ? dir : "/tmp") + "/" + name + "XXXXXX";
}

// Sends one request (header, then `args`) with a 4 KiB reply buffer; returns the reply's errno
// (0 for success) and its body in `body` if given.
int SendRequest(FuseServer& server, uint32_t opcode, uint64_t nodeid, const std::string& args,
                std::string* body = nullptr, uint32_t uid = 0, uint32_t gid = 0) {
  fuse_in_header in{};
  in.opcode = opcode;
  in.unique = 1;
  in.nodeid = nodeid;
  in.uid = uid;
  in.gid = gid;
  std::string request(reinterpret_cast<char*>(&in), sizeof(in));
  request += args;
  reinterpret_cast<fuse_in_header*>(request.data())->len = request.size();
  std::vector<char> out(4096);
  DescriptorChain chain;
  chain.readable.push_back({request.data(), request.size()});
  chain.readable_bytes = request.size();
  chain.writable.push_back({out.data(), out.size()});
  chain.writable_bytes = out.size();
  const uint32_t len = server.Handle(chain);
  if (len < sizeof(fuse_out_header)) return -1;
  fuse_out_header o;
  std::memcpy(&o, out.data(), sizeof(o));
  if (body) body->assign(out.data() + sizeof(o), len - sizeof(o));
  return -o.error;
}

class FuseServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = TempTemplate("fuse-test-");
    base_ = mkdtemp(tmpl.data());
    shared_ = base_ + "/shared";
    mkdir(shared_.c_str(), 0755);
    std::ofstream(base_ + "/outside.txt") << "secret";
    std::ofstream(shared_ + "/hello.txt") << "hello world";
    ASSERT_EQ(symlink("../outside.txt", (shared_ + "/escape").c_str()), 0);
    FsOptions options;
    options.shared_dir = shared_;
    options.xattr = true;
    ASSERT_OK_AND_ASSIGN(server_, FuseServer::Create(options));
    Init();
  }
  void TearDown() override { RemoveTree(base_); }

  struct Reply {
    int error = 1;
    uint32_t len = 0;
    std::string body;
  };

  // Sends opcode on nodeid with `args`; the reply buffer holds `room` bytes after the header.
  Reply Send(uint32_t opcode, uint64_t nodeid, const std::string& args, uint32_t room = 65536,
             const std::string& data = "", int64_t claimed_len = -1) {
    fuse_in_header in{};
    in.opcode = opcode;
    in.unique = ++unique_;
    in.nodeid = nodeid;
    in.uid = getuid();
    in.gid = getgid();
    std::string request(reinterpret_cast<char*>(&in), sizeof(in));
    request += args;
    request += data;
    fuse_in_header* h = reinterpret_cast<fuse_in_header*>(request.data());
    h->len = claimed_len >= 0 ? static_cast<uint32_t>(claimed_len) : request.size();
    std::vector<char> out(sizeof(fuse_out_header) + room, '\xee');
    DescriptorChain chain;
    chain.readable.push_back({request.data(), request.size()});
    chain.readable_bytes = request.size();
    chain.writable.push_back({out.data(), out.size()});
    chain.writable_bytes = out.size();
    Reply r;
    r.len = server_->Handle(chain);
    if (r.len >= sizeof(fuse_out_header)) {
      fuse_out_header o;
      std::memcpy(&o, out.data(), sizeof(o));
      EXPECT_EQ(o.unique, in.unique);
      EXPECT_EQ(o.len, r.len);
      r.error = -o.error;
      r.body.assign(out.data() + sizeof(o), r.len - sizeof(o));
    }
    return r;
  }
  template <typename T>
  static std::string Bytes(const T& v) {
    return std::string(reinterpret_cast<const char*>(&v), sizeof(v));
  }
  static std::string Name(const std::string& n) { return n + std::string(1, '\0'); }
  template <typename T>
  static T As(const std::string& body) {
    T v{};
    std::memcpy(&v, body.data(), std::min(sizeof(T), body.size()));
    return v;
  }

  void Init() {
    fuse_init_in in{};
    in.major = FUSE_KERNEL_VERSION;
    in.minor = FUSE_KERNEL_MINOR_VERSION;
    in.max_readahead = 1 << 17;
    in.flags = FUSE_ASYNC_READ | FUSE_DO_READDIRPLUS | FUSE_BIG_WRITES;
    Reply r = Send(FUSE_INIT, 0, Bytes(in));
    ASSERT_EQ(r.error, 0);
    auto out = As<fuse_init_out>(r.body);
    EXPECT_EQ(out.major, 7u);
    EXPECT_EQ(out.max_write, FuseServer::kMaxWrite);
    EXPECT_TRUE(out.flags & FUSE_DO_READDIRPLUS);
  }
  uint64_t Lookup(uint64_t parent, const std::string& name, int* error = nullptr) {
    Reply r = Send(FUSE_LOOKUP, parent, Name(name));
    if (error) *error = r.error;
    return r.error ? 0 : As<fuse_entry_out>(r.body).nodeid;
  }
  uint64_t OpenFile(uint64_t nodeid, int flags) {
    fuse_open_in in{};
    in.flags = flags;
    Reply r = Send(FUSE_OPEN, nodeid, Bytes(in));
    EXPECT_EQ(r.error, 0);
    return As<fuse_open_out>(r.body).fh;
  }

  std::string base_, shared_;
  std::unique_ptr<FuseServer> server_;
  uint64_t unique_ = 0;
};

TEST_F(FuseServerTest, LookupGetattrOpenRead) {
  const uint64_t node = Lookup(kRootNodeId, "hello.txt");
  ASSERT_NE(node, 0u);
  Reply attr = Send(FUSE_GETATTR, node, Bytes(fuse_getattr_in{}));
  ASSERT_EQ(attr.error, 0);
  EXPECT_EQ(As<fuse_attr_out>(attr.body).attr.size, 11u);
  const uint64_t fh = OpenFile(node, O_RDONLY);
  fuse_read_in read{};
  read.fh = fh;
  read.offset = 6;
  read.size = 100;
  Reply data = Send(FUSE_READ, node, Bytes(read));
  EXPECT_EQ(data.error, 0);
  EXPECT_EQ(data.body, "world");
  fuse_release_in release{};
  release.fh = fh;
  EXPECT_EQ(Send(FUSE_RELEASE, node, Bytes(release)).error, 0);
  EXPECT_EQ(Send(FUSE_READ, node, Bytes(read)).error, EBADF);  // released
  EXPECT_EQ(Send(FUSE_RELEASE, node, Bytes(release)).error, EBADF);
  EXPECT_EQ(server_->inodes().handle_count(), 0u);
}

// FUSE_INIT as a client of `minor` sends it: 16 bytes before 7.36, 64 (flags2 read only with
// FUSE_INIT_EXT) from 7.36 on.
std::string InitRequest(uint32_t minor, uint64_t flags) {
  fuse_init_in in{};
  in.major = FUSE_KERNEL_VERSION;
  in.minor = minor;
  in.max_readahead = 1 << 17;
  in.flags = static_cast<uint32_t>(flags);
  in.flags2 = static_cast<uint32_t>(flags >> 32);
  const size_t size = minor < 36 ? offsetof(fuse_init_in, flags2) : sizeof(in);
  EXPECT_EQ(size, minor < 36 ? 16u : 64u);
  return std::string(reinterpret_cast<const char*>(&in), size);
}

TEST_F(FuseServerTest, InitNegotiatesDownToTheClientsMinor) {
  // What Linux 5.4 to 6.x offer; WRITEBACK_CACHE and SECURITY_CTX we never agree to.
  const uint64_t offered = FUSE_ASYNC_READ | FUSE_DO_READDIRPLUS | FUSE_WRITEBACK_CACHE |
                           FUSE_MAX_PAGES | FUSE_PARALLEL_DIROPS;
  struct Case {
    uint32_t minor;
    uint64_t flags;
    uint32_t want_flags;
    uint32_t want_max_pages;
  };
  const uint32_t agreed = FUSE_ASYNC_READ | FUSE_DO_READDIRPLUS | FUSE_PARALLEL_DIROPS;
  for (const Case& c : {
           // 7.27 knows no FUSE_MAX_PAGES (7.28): no max_pages either.
           Case{27, FUSE_ASYNC_READ | FUSE_DO_READDIRPLUS | FUSE_PARALLEL_DIROPS, agreed, 0},
           Case{31, offered, agreed | FUSE_MAX_PAGES, 256},
           Case{36, offered | FUSE_INIT_EXT | FUSE_SECURITY_CTX, agreed | FUSE_MAX_PAGES, 256},
           Case{FUSE_KERNEL_MINOR_VERSION, offered | FUSE_INIT_EXT | FUSE_SECURITY_CTX,
                agreed | FUSE_MAX_PAGES, 256},
       }) {
    SCOPED_TRACE(c.minor);
    Reply r = Send(FUSE_INIT, 0, InitRequest(c.minor, c.flags));
    ASSERT_EQ(r.error, 0);
    EXPECT_EQ(r.body.size(), sizeof(fuse_init_out));  // 64: every minor from 7.23 on
    auto out = As<fuse_init_out>(r.body);
    EXPECT_EQ(out.major, 7u);
    EXPECT_EQ(out.minor, c.minor);
    EXPECT_EQ(out.flags, c.want_flags);  // no FUSE_INIT_EXT: no flags2 agreed
    EXPECT_EQ(out.flags2, 0u);
    EXPECT_EQ(out.max_pages, c.want_max_pages);
    EXPECT_EQ(out.max_write, FuseServer::kMaxWrite);
    EXPECT_EQ(out.max_readahead, 1u << 17);
    // The session works in the client's forms: LOOKUP, CREATE, WRITE, READ, GETATTR, SETATTR.
    const uint64_t node = Lookup(kRootNodeId, "hello.txt");
    ASSERT_NE(node, 0u);
    fuse_create_in create{};
    create.flags = O_RDWR;
    create.mode = S_IFREG | 0644;
    const std::string name = absl::StrCat("new", c.minor);
    Reply created = Send(FUSE_CREATE, kRootNodeId, Bytes(create) + Name(name));
    ASSERT_EQ(created.error, 0);
    const auto entry = As<fuse_entry_out>(created.body);
    const auto open = As<fuse_open_out>(created.body.substr(sizeof(fuse_entry_out)));
    fuse_write_in write{};
    write.fh = open.fh;
    write.size = 5;
    Reply wrote = Send(FUSE_WRITE, entry.nodeid, Bytes(write), 65536, "abcde");
    ASSERT_EQ(wrote.error, 0);
    EXPECT_EQ(As<fuse_write_out>(wrote.body).size, 5u);
    fuse_read_in read{};
    read.fh = open.fh;
    read.size = 100;
    EXPECT_EQ(Send(FUSE_READ, entry.nodeid, Bytes(read)).body, "abcde");
    fuse_setattr_in setattr{};
    setattr.valid = FATTR_SIZE;
    setattr.size = 2;
    ASSERT_EQ(Send(FUSE_SETATTR, entry.nodeid, Bytes(setattr)).error, 0);
    Reply attr = Send(FUSE_GETATTR, entry.nodeid, Bytes(fuse_getattr_in{}));
    ASSERT_EQ(attr.error, 0);
    EXPECT_EQ(As<fuse_attr_out>(attr.body).attr.size, 2u);
  }
  // Before 7.23, fuse_init_out ended after max_write (FUSE_COMPAT_22_INIT_OUT_SIZE).
  Reply r = Send(FUSE_INIT, 0, InitRequest(22, FUSE_ASYNC_READ));
  ASSERT_EQ(r.error, 0);
  EXPECT_EQ(r.body.size(), size_t{FUSE_COMPAT_22_INIT_OUT_SIZE});
  EXPECT_EQ(As<fuse_init_out>(r.body).minor, 22u);
  EXPECT_EQ(As<fuse_init_out>(r.body).max_write, FuseServer::kMaxWrite);
  // A client newer than us gets our minor.
  r = Send(FUSE_INIT, 0, InitRequest(FUSE_KERNEL_MINOR_VERSION + 5, FUSE_ASYNC_READ));
  ASSERT_EQ(r.error, 0);
  EXPECT_EQ(As<fuse_init_out>(r.body).minor, uint32_t{FUSE_KERNEL_MINOR_VERSION});
}

TEST_F(FuseServerTest, MalformedInit) {
  const std::string current = InitRequest(FUSE_KERNEL_MINOR_VERSION, FUSE_ASYNC_READ);
  // Shorter than the 16-byte form, or nothing at all.
  EXPECT_EQ(Send(FUSE_INIT, 0, current.substr(0, 15)).error, EPROTO);
  EXPECT_EQ(Send(FUSE_INIT, 0, current.substr(0, 8)).error, EPROTO);
  EXPECT_EQ(Send(FUSE_INIT, 0, "").error, EPROTO);
  // A header claiming only 12 of the 64 bytes the chain holds: the rest is not read.
  EXPECT_EQ(Send(FUSE_INIT, 0, current, 65536, "", sizeof(fuse_in_header) + 12).error, EPROTO);
  // Majors other than 7, minors older than we serve.
  fuse_init_in in{};
  in.major = 6;
  in.minor = 40;
  EXPECT_EQ(Send(FUSE_INIT, 0, Bytes(in)).error, EPROTO);
  in.major = 7;
  in.minor = FuseServer::kMinMinor - 1;
  EXPECT_EQ(Send(FUSE_INIT, 0, Bytes(in)).error, EPROTO);
  // A later major: our major (and minor) alone, 8 bytes, for the client to retry in.
  in.major = 8;
  in.minor = 0;
  Reply r = Send(FUSE_INIT, 0, Bytes(in));
  ASSERT_EQ(r.error, 0);
  EXPECT_EQ(r.body.size(), size_t{FUSE_COMPAT_INIT_OUT_SIZE});
  EXPECT_EQ(As<fuse_init_out>(r.body).major, 7u);
  EXPECT_EQ(As<fuse_init_out>(r.body).minor, uint32_t{FUSE_KERNEL_MINOR_VERSION});
  // flags2 without FUSE_INIT_EXT is not read; FUSE_INIT_EXT is never echoed for nothing.
  in = fuse_init_in{};
  in.major = 7;
  in.minor = FUSE_KERNEL_MINOR_VERSION;
  in.flags = FUSE_ASYNC_READ;
  in.flags2 = 0xffffffff;
  r = Send(FUSE_INIT, 0, Bytes(in));
  ASSERT_EQ(r.error, 0);
  EXPECT_EQ(As<fuse_init_out>(r.body).flags, uint32_t{FUSE_ASYNC_READ});
  EXPECT_EQ(As<fuse_init_out>(r.body).flags2, 0u);
}

TEST(FuseServerInitTest, OpenFlagsTheClientKnows) {
  std::string tmpl = TempTemplate("fuse-init-");
  const std::string dir = mkdtemp(tmpl.data());
  FsOptions options;
  options.shared_dir = dir;
  options.cache = CacheMode::kAlways;
  ASSERT_OK_AND_ASSIGN(auto server, FuseServer::Create(options));
  auto opendir_flags = [&](uint32_t minor) {
    EXPECT_EQ(SendRequest(*server, FUSE_INIT, 0, InitRequest(minor, FUSE_ASYNC_READ)), 0);
    std::string body;
    EXPECT_EQ(SendRequest(*server, FUSE_OPENDIR, kRootNodeId, std::string(sizeof(fuse_open_in), 0),
                          &body),
              0);
    fuse_open_out out{};
    std::memcpy(&out, body.data(), std::min(sizeof(out), body.size()));
    return out.open_flags;
  };
  EXPECT_FALSE(opendir_flags(27) & FOPEN_CACHE_DIR);  // FOPEN_CACHE_DIR is 7.28's
  EXPECT_TRUE(opendir_flags(28) & FOPEN_CACHE_DIR);
  server.reset();
  RemoveTree(dir);
}

TEST_F(FuseServerTest, CreateWriteRenameLinkSymlinkUnlink) {
  fuse_create_in create{};
  create.flags = O_RDWR;
  create.mode = S_IFREG | 0644;
  Reply c = Send(FUSE_CREATE, kRootNodeId, Bytes(create) + Name("new.txt"));
  ASSERT_EQ(c.error, 0);
  const auto entry = As<fuse_entry_out>(c.body);
  const auto open = As<fuse_open_out>(c.body.substr(sizeof(fuse_entry_out)));
  fuse_write_in write{};
  write.fh = open.fh;
  write.size = 5;
  Reply w = Send(FUSE_WRITE, entry.nodeid, Bytes(write), 100, "abcde");
  ASSERT_EQ(w.error, 0);
  EXPECT_EQ(As<fuse_write_out>(w.body).size, 5u);
  // A write claiming more data than the request carries.
  write.size = 500;
  EXPECT_EQ(Send(FUSE_WRITE, entry.nodeid, Bytes(write), 100, "abc").error, EINVAL);
  fuse_rename_in rename{};
  rename.newdir = kRootNodeId;
  EXPECT_EQ(Send(FUSE_RENAME, kRootNodeId, Bytes(rename) + Name("new.txt") + Name("moved")).error,
            0);
  std::ifstream moved(shared_ + "/moved");
  std::string content((std::istreambuf_iterator<char>(moved)), {});
  EXPECT_EQ(content, "abcde");
  fuse_link_in link{};
  link.oldnodeid = entry.nodeid;
  Reply l = Send(FUSE_LINK, kRootNodeId, Bytes(link) + Name("hard"));
  ASSERT_EQ(l.error, 0);
  EXPECT_EQ(As<fuse_entry_out>(l.body).nodeid, entry.nodeid);  // hard links share the inode
  EXPECT_EQ(As<fuse_entry_out>(l.body).attr.nlink, 2u);
  Reply s = Send(FUSE_SYMLINK, kRootNodeId, Name("sym") + Name("moved"));
  ASSERT_EQ(s.error, 0);
  Reply target = Send(FUSE_READLINK, As<fuse_entry_out>(s.body).nodeid, "");
  EXPECT_EQ(target.body, "moved");
  EXPECT_EQ(Send(FUSE_UNLINK, kRootNodeId, Name("hard")).error, 0);
  EXPECT_EQ(Send(FUSE_UNLINK, kRootNodeId, Name("hard")).error, ENOENT);
  fuse_mkdir_in mkdir_in{};
  mkdir_in.mode = 0755;
  EXPECT_EQ(Send(FUSE_MKDIR, kRootNodeId, Bytes(mkdir_in) + Name("d")).error, 0);
  EXPECT_EQ(Send(FUSE_RMDIR, kRootNodeId, Name("d")).error, 0);
}

TEST_F(FuseServerTest, ReadDirPlusListsEverythingAcrossCalls) {
  for (int i = 0; i < 300; ++i) std::ofstream(shared_ + "/f" + std::to_string(i)) << i;
  fuse_open_in open_in{};
  Reply o = Send(FUSE_OPENDIR, kRootNodeId, Bytes(open_in));
  ASSERT_EQ(o.error, 0);
  fuse_read_in read{};
  read.fh = As<fuse_open_out>(o.body).fh;
  read.size = 4096;
  std::vector<std::string> names;
  for (int calls = 0; calls < 100; ++calls) {
    Reply r = Send(FUSE_READDIRPLUS, kRootNodeId, Bytes(read));
    ASSERT_EQ(r.error, 0);
    if (r.body.empty()) break;
    for (size_t off = 0; off < r.body.size();) {
      const auto* e = reinterpret_cast<const fuse_direntplus*>(r.body.data() + off);
      names.emplace_back(e->dirent.name, e->dirent.namelen);
      const std::string name(e->dirent.name, e->dirent.namelen);
      if (name != "." && name != "..") {
        EXPECT_NE(e->entry_out.nodeid, 0u) << name;
      }
      read.offset = e->dirent.off;
      off += FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET_DIRENTPLUS + e->dirent.namelen);
    }
  }
  EXPECT_EQ(names.size(), 300u + 4u);  // f0..f299, hello.txt, escape, ., ..
}

// A READDIR reply is built in memory: it holds at most max_pages (1 MiB), however much the
// guest asks for and however large its buffer claims to be, and the next call goes on from there.
TEST_F(FuseServerTest, ReadDirRepliesAreBoundedWhateverSizeIsAsked) {
  const int files = 5000;  // 224 bytes each: 1.1 MB of entries
  for (int i = 0; i < files; ++i) {
    const std::string name = std::to_string(i);
    std::ofstream(shared_ + "/" + name + std::string(200 - name.size(), 'x'));
  }
  fuse_open_in open_in{};
  Reply o = Send(FUSE_OPENDIR, kRootNodeId, Bytes(open_in));
  ASSERT_EQ(o.error, 0);
  fuse_read_in read{};
  read.fh = As<fuse_open_out>(o.body).fh;
  read.size = UINT32_MAX;
  size_t entries = 0;
  for (int calls = 0; calls < 10; ++calls) {
    Reply r = Send(FUSE_READDIR, kRootNodeId, Bytes(read), 4 * FuseServer::kMaxWrite);
    ASSERT_EQ(r.error, 0);
    if (r.body.empty()) break;
    EXPECT_LE(r.body.size(), FuseServer::kMaxWrite);
    for (size_t off = 0; off < r.body.size(); ++entries) {
      const auto* e = reinterpret_cast<const fuse_dirent*>(r.body.data() + off);
      read.offset = e->off;
      off += FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET + e->namelen);
    }
  }
  EXPECT_EQ(entries, files + 4u);  // and hello.txt, escape, ., ..
}

// READDIR goes on from the stream where it stands without a seek, so what it must still do:
// start from any cookie of an earlier reply, keep an entry that did not fit for the next call,
// and read the directory afresh on a rewind to 0, even one before any entry was handed out.
TEST_F(FuseServerTest, ReadDirGoesOnFromAnyCookieAndRewinds) {
  for (int i = 0; i < 200; ++i) std::ofstream(shared_ + "/f" + std::to_string(i)) << i;
  fuse_open_in open_in{};
  Reply o = Send(FUSE_OPENDIR, kRootNodeId, Bytes(open_in));
  ASSERT_EQ(o.error, 0);
  fuse_read_in read{};
  read.fh = As<fuse_open_out>(o.body).fh;
  struct Entry {
    std::string name;
    uint64_t off;
  };
  auto readdir = [&](uint64_t offset, uint32_t size) {
    read.offset = offset;
    read.size = size;
    Reply r = Send(FUSE_READDIR, kRootNodeId, Bytes(read));
    EXPECT_EQ(r.error, 0);
    std::vector<Entry> entries;
    for (size_t at = 0; at + FUSE_NAME_OFFSET <= r.body.size();) {
      const auto* e = reinterpret_cast<const fuse_dirent*>(r.body.data() + at);
      entries.push_back({std::string(e->name, e->namelen), e->off});
      at += FUSE_DIRENT_SIZE(e);
    }
    return entries;
  };
  auto all_from = [&](uint64_t offset) {
    std::vector<Entry> entries;
    for (int calls = 0; calls < 1000; ++calls) {
      std::vector<Entry> got = readdir(offset, 512);
      if (got.empty()) break;
      offset = got.back().off;
      entries.insert(entries.end(), got.begin(), got.end());
    }
    return entries;
  };
  // A buffer too small for any entry: nothing, and the first entry stays for the next call.
  EXPECT_TRUE(readdir(0, 8).empty());
  // Made after that call read its batch: the rewind to 0 still lists it.
  std::ofstream(shared_ + "/late") << "x";
  const std::vector<Entry> pass = all_from(0);
  std::set<std::string> names;
  for (const Entry& e : pass) EXPECT_TRUE(names.insert(e.name).second) << e.name << " twice";
  EXPECT_EQ(names.size(), 200u + 5u);  // f0..f199, late, hello.txt, escape, ., ..
  EXPECT_EQ(names.count("late"), 1u);
  // From a cookie of the middle, and from one just behind where the stream stands: the entries
  // after it, as the first pass had them.
  for (size_t i : {size_t{100}, pass.size() - 2}) {
    const std::vector<Entry> rest = all_from(pass[i].off);
    ASSERT_EQ(rest.size(), pass.size() - i - 1) << i;
    for (size_t j = 0; j < rest.size(); ++j) EXPECT_EQ(rest[j].name, pass[i + 1 + j].name);
  }
  // Rewound after a whole pass: the directory as it is now.
  ASSERT_EQ(unlink((shared_ + "/late").c_str()), 0);
  std::set<std::string> again;
  for (const Entry& e : all_from(0)) again.insert(e.name);
  EXPECT_EQ(again.size(), 200u + 4u);
  EXPECT_EQ(again.count("late"), 0u);
}

TEST_F(FuseServerTest, NothingOutsideTheSharedDirectory) {
  // ".." of the root is the root.
  EXPECT_EQ(Lookup(kRootNodeId, ".."), kRootNodeId);
  // Names with '/' are refused, whatever they point at.
  int error;
  Lookup(kRootNodeId, "../outside.txt", &error);
  EXPECT_EQ(error, EINVAL);
  Lookup(kRootNodeId, "a/b", &error);
  EXPECT_EQ(error, EINVAL);
  Lookup(kRootNodeId, "", &error);
  EXPECT_EQ(error, EINVAL);
  // A symlink to the outside is a symlink: its target is text, never followed.
  const uint64_t link = Lookup(kRootNodeId, "escape");
  ASSERT_NE(link, 0u);
  EXPECT_EQ(Send(FUSE_READLINK, link, "").body, "../outside.txt");
  fuse_open_in open_in{};
  open_in.flags = O_RDONLY;
  EXPECT_EQ(Send(FUSE_OPEN, link, Bytes(open_in)).error, ELOOP);
  fuse_create_in create{};
  create.flags = O_RDWR | O_TRUNC;
  create.mode = 0644;
  EXPECT_NE(Send(FUSE_CREATE, kRootNodeId, Bytes(create) + Name("escape")).error, 0);
  std::ifstream outside(base_ + "/outside.txt");
  std::string content((std::istreambuf_iterator<char>(outside)), {});
  EXPECT_EQ(content, "secret");
  // Renaming or linking ".." is refused.
  fuse_rename_in rename{};
  rename.newdir = kRootNodeId;
  EXPECT_EQ(Send(FUSE_RENAME, kRootNodeId, Bytes(rename) + Name("..") + Name("x")).error, EINVAL);
}

TEST_F(FuseServerTest, MalformedRequests) {
  // Shorter than a header: an error reply without a known unique.
  DescriptorChain chain;
  char tiny[10] = {};
  char out[64];
  chain.readable.push_back({tiny, sizeof(tiny)});
  chain.readable_bytes = sizeof(tiny);
  chain.writable.push_back({out, sizeof(out)});
  chain.writable_bytes = sizeof(out);
  EXPECT_EQ(server_->Handle(chain), sizeof(fuse_out_header));
  EXPECT_EQ(reinterpret_cast<fuse_out_header*>(out)->error, -EINVAL);
  // No room for a reply: nothing written.
  chain.writable_bytes = 8;
  chain.writable[0].iov_len = 8;
  EXPECT_EQ(server_->Handle(chain), 0u);
  // A header claiming more bytes than the request has.
  EXPECT_EQ(Send(FUSE_GETATTR, kRootNodeId, Bytes(fuse_getattr_in{}), 4096, "", 5000).error,
            EINVAL);
  // Arguments missing, names without their NUL, unknown nodes and opcodes.
  EXPECT_EQ(Send(FUSE_SETATTR, kRootNodeId, "").error, EINVAL);
  EXPECT_EQ(Send(FUSE_LOOKUP, kRootNodeId, "hello.txt").error, EINVAL);
  EXPECT_EQ(Send(FUSE_GETATTR, 999999, Bytes(fuse_getattr_in{})).error, ESTALE);
  EXPECT_EQ(Send(9999, kRootNodeId, "").error, ENOSYS);
  fuse_read_in read{};
  read.fh = 12345;
  read.size = 10;
  EXPECT_EQ(Send(FUSE_READ, kRootNodeId, Bytes(read)).error, EBADF);
  // A reply that does not fit the guest's buffer.
  EXPECT_EQ(Send(FUSE_LOOKUP, kRootNodeId, Name("hello.txt"), 8).error, ERANGE);
  // Forgetting more than was looked up, or an unknown node, is harmless.
  fuse_forget_in forget{};
  forget.nlookup = 1000;
  EXPECT_EQ(Send(FUSE_FORGET, 424242, Bytes(forget)).len, 0u);
  fuse_batch_forget_in batch{};
  batch.count = 1000000;  // far more than follow
  EXPECT_EQ(Send(FUSE_BATCH_FORGET, 0, Bytes(batch)).len, 0u);
}

TEST_F(FuseServerTest, ForgetDropsInodes) {
  const uint64_t node = Lookup(kRootNodeId, "hello.txt");
  EXPECT_EQ(Lookup(kRootNodeId, "hello.txt"), node);  // looked up twice
  EXPECT_EQ(server_->inodes().size(), 2u);
  fuse_forget_in forget{};
  forget.nlookup = 1;
  Send(FUSE_FORGET, node, Bytes(forget));
  EXPECT_EQ(server_->inodes().size(), 2u);
  Send(FUSE_FORGET, node, Bytes(forget));
  EXPECT_EQ(server_->inodes().size(), 1u);  // only the root
  EXPECT_EQ(Send(FUSE_GETATTR, node, Bytes(fuse_getattr_in{})).error, ESTALE);
}

TEST_F(FuseServerTest, SetattrStatfsXattrSeek) {
  const uint64_t node = Lookup(kRootNodeId, "hello.txt");
  fuse_setattr_in set{};
  set.valid = FATTR_SIZE | FATTR_MODE;
  set.size = 5;
  set.mode = 0600;
  Reply r = Send(FUSE_SETATTR, node, Bytes(set));
  ASSERT_EQ(r.error, 0);
  EXPECT_EQ(As<fuse_attr_out>(r.body).attr.size, 5u);
  EXPECT_EQ(As<fuse_attr_out>(r.body).attr.mode & 07777, 0600u);
  Reply fs = Send(FUSE_STATFS, kRootNodeId, "");
  EXPECT_EQ(fs.error, 0);
  EXPECT_GT(As<fuse_statfs_out>(fs.body).st.bsize, 0u);
  const std::string value = "v1";
  fuse_setxattr_in sx{};
  sx.size = value.size();
  Reply x = Send(FUSE_SETXATTR, node,
                 Bytes(sx).substr(0, FUSE_COMPAT_SETXATTR_IN_SIZE) + Name("user.test") + value);
  if (x.error == 0) {
    fuse_getxattr_in gx{};
    gx.size = 64;
    EXPECT_EQ(Send(FUSE_GETXATTR, node, Bytes(gx) + Name("user.test")).body, "v1");
  } else {
    EXPECT_EQ(x.error, EOPNOTSUPP);  // a file system without user xattrs
  }
  const uint64_t fh = OpenFile(node, O_RDONLY);
  fuse_lseek_in seek{};
  seek.fh = fh;
  seek.offset = 0;
  seek.whence = SEEK_END;
  EXPECT_EQ(As<fuse_lseek_out>(Send(FUSE_LSEEK, node, Bytes(seek)).body).offset, 5u);
}

}  // namespace
}  // namespace vhost

namespace vhost {
namespace {

TEST(FuseServerSubmountTest, MountPointsAreAnnounced) {
  std::string tmpl = TempTemplate("fuse-submount-");
  const std::string dir = mkdtemp(tmpl.data());
  mkdir((dir + "/inner").c_str(), 0755);
  mkdir((dir + "/plain").c_str(), 0755);
  ASSERT_EQ(mount("tmpfs", (dir + "/inner").c_str(), "tmpfs", 0, nullptr), 0) << strerror(errno);
  FsOptions options;
  options.shared_dir = dir;
  options.announce_submounts = true;
  ASSERT_OK_AND_ASSIGN(auto server, FuseServer::Create(options));
  auto lookup_flags = [&](const std::string& name) {
    std::string body;
    EXPECT_EQ(SendRequest(*server, FUSE_LOOKUP, kRootNodeId, name + '\0', &body), 0);
    fuse_entry_out entry{};
    std::memcpy(&entry, body.data(), std::min(sizeof(entry), body.size()));
    return entry.attr.flags;
  };
  EXPECT_TRUE(lookup_flags("inner") & FUSE_ATTR_SUBMOUNT);
  EXPECT_FALSE(lookup_flags("plain") & FUSE_ATTR_SUBMOUNT);
  // A client that did not offer FUSE_SUBMOUNTS (7.31 knows no attr.flags) is told nothing.
  EXPECT_EQ(SendRequest(*server, FUSE_INIT, 0, InitRequest(31, FUSE_ASYNC_READ)), 0);
  EXPECT_FALSE(lookup_flags("inner") & FUSE_ATTR_SUBMOUNT);
  EXPECT_EQ(SendRequest(*server, FUSE_INIT, 0,
                        InitRequest(FUSE_KERNEL_MINOR_VERSION, FUSE_SUBMOUNTS | FUSE_INIT_EXT)),
            0);
  EXPECT_TRUE(lookup_flags("inner") & FUSE_ATTR_SUBMOUNT);
  server.reset();  // its fds keep the mount busy
  EXPECT_EQ(umount((dir + "/inner").c_str()), 0) << strerror(errno);
  RemoveTree(dir);
}

TEST(IdMapTest, ParsesAndTranslatesBothWays) {
  ASSERT_OK_AND_ASSIGN(IdMap map, IdMap::Parse("0:100000:1000,5000:5000:1", "--translate-uid"));
  EXPECT_EQ(map.GuestToHost(0), 100000u);
  EXPECT_EQ(map.GuestToHost(999), 100999u);
  EXPECT_EQ(map.GuestToHost(1000), 1000u);  // outside every range: unchanged
  EXPECT_EQ(map.HostToGuest(100005), 5u);
  EXPECT_EQ(map.HostToGuest(5000), 5000u);
  for (const char* bad : {"1:2", "a:b:c", "0:0:0", "0:10:5,3:20:1", "4294967295:0:2"}) {
    EXPECT_FALSE(IdMap::Parse(bad, "--translate-uid").ok()) << bad;
  }
}

TEST(FuseServerIdMapTest, GuestRootBecomesAHostUser) {
  std::string tmpl = TempTemplate("fuse-ids-");
  const std::string dir = mkdtemp(tmpl.data());
  chmod(dir.c_str(), 0777);  // the mapped user creates the file
  FsOptions options;
  options.shared_dir = dir;
  ASSERT_OK_AND_ASSIGN(options.uids, IdMap::Parse("0:65534:1", "--translate-uid"));
  ASSERT_OK_AND_ASSIGN(options.gids, IdMap::Parse("0:65534:1", "--translate-gid"));
  ASSERT_OK_AND_ASSIGN(auto server, FuseServer::Create(options));
  // CREATE as the guest's root.
  fuse_create_in create{};
  create.flags = O_RDWR;
  create.mode = 0644;
  std::string body;
  ASSERT_EQ(SendRequest(*server, FUSE_CREATE, kRootNodeId,
                        std::string(reinterpret_cast<char*>(&create), sizeof(create)) + "f" + '\0',
                        &body),
            0);
  fuse_entry_out entry;
  std::memcpy(&entry, body.data(), sizeof(entry));
  struct stat st;
  ASSERT_EQ(stat((dir + "/f").c_str(), &st), 0);
  if (geteuid() == 0) {
    EXPECT_EQ(st.st_uid, 65534u);   // on the host: nobody
    EXPECT_EQ(entry.attr.uid, 0u);  // to the guest: its root
  } else {
    EXPECT_EQ(entry.attr.uid, st.st_uid == 65534 ? 0u : st.st_uid);
  }
  RemoveTree(dir);
}

}  // namespace
}  // namespace vhost

namespace vhost {
namespace {

// A host process swaps a directory the guest uses for a symlink to the outside, over and over,
// while the guest creates files in it: every file lands inside the shared directory (in the
// directory, which the node keeps even when renamed away), none outside.
TEST(FuseServerRaceTest, SymlinkSwapsNeverLeadOutside) {
  std::string tmpl = TempTemplate("fuse-race-");
  const std::string base = mkdtemp(tmpl.data());
  const std::string shared = base + "/shared", outside = base + "/outside";
  mkdir(shared.c_str(), 0755);
  mkdir(outside.c_str(), 0755);
  mkdir((shared + "/d").c_str(), 0755);
  FsOptions options;
  options.shared_dir = shared;
  ASSERT_OK_AND_ASSIGN(auto server, FuseServer::Create(options));
  std::atomic<bool> stop{false};
  std::thread swapper([&] {
    while (!stop) {
      rename((shared + "/d").c_str(), (shared + "/d.away").c_str());
      // Fails while the rename above lost the race: the point is the swapping.
      (void)!symlink(outside.c_str(), (shared + "/d").c_str());
      unlink((shared + "/d").c_str());
      rename((shared + "/d.away").c_str(), (shared + "/d").c_str());
    }
  });
  int created = 0;
  // At least 2000 rounds, and on until one create got through: on a loaded machine the swapper
  // can win every round for a while, which says nothing about the server.
  for (int i = 0; i < 2000 || (created == 0 && i < 1000000); ++i) {
    std::string body;
    if (SendRequest(*server, FUSE_LOOKUP, kRootNodeId, std::string("d") + '\0', &body) != 0)
      continue;
    fuse_entry_out entry;
    std::memcpy(&entry, body.data(), sizeof(entry));
    fuse_create_in create{};
    create.flags = O_RDWR;
    create.mode = 0644;
    std::string args(reinterpret_cast<char*>(&create), sizeof(create));
    args += "f" + std::to_string(i) + '\0';
    if (SendRequest(*server, FUSE_CREATE, entry.nodeid, args, nullptr) == 0) ++created;
  }
  stop = true;
  swapper.join();
  EXPECT_GT(created, 0);
  DIR* d = opendir(outside.c_str());
  int outside_entries = 0;
  while (dirent* e = readdir(d)) outside_entries += e->d_name[0] != '.';
  closedir(d);
  EXPECT_EQ(outside_entries, 0) << "a file was created outside the shared directory";
  RemoveTree(base);
}

}  // namespace
}  // namespace vhost

namespace vhost {
namespace {

// --posix-lock: two lock owners on one file conflict on the host; a FLUSH of the holder (its
// close) releases its locks; a host process sees the guest's lock too.
TEST(FuseServerLockTest, RecordLocksAreHostLocks) {
  std::string tmpl = TempTemplate("fuse-lock-");
  const std::string dir = mkdtemp(tmpl.data());
  std::ofstream(dir + "/file") << std::string(1000, 'x');
  FsOptions options;
  options.shared_dir = dir;
  options.posix_lock = true;
  ASSERT_OK_AND_ASSIGN(auto server, FuseServer::Create(options));
  std::string body;
  ASSERT_EQ(SendRequest(*server, FUSE_LOOKUP, kRootNodeId, std::string("file") + '\0', &body), 0);
  fuse_entry_out entry;
  std::memcpy(&entry, body.data(), sizeof(entry));
  auto lock = [&](uint32_t opcode, uint64_t owner, uint32_t type, uint64_t start, uint64_t end,
                  std::string* out) {
    fuse_lk_in in{};
    in.owner = owner;
    in.lk = {start, end, type, 0};
    return SendRequest(*server, opcode, entry.nodeid,
                       std::string(reinterpret_cast<char*>(&in), sizeof(in)), out);
  };
  EXPECT_EQ(lock(FUSE_SETLK, 1, F_WRLCK, 0, 99, nullptr), 0);
  EXPECT_EQ(lock(FUSE_SETLK, 2, F_WRLCK, 50, 60, nullptr), EAGAIN);  // owner 1 holds it
  EXPECT_EQ(lock(FUSE_SETLK, 1, F_WRLCK, 50, 60, nullptr), 0);       // the same owner may
  ASSERT_EQ(lock(FUSE_GETLK, 2, F_WRLCK, 0, INT64_MAX, &body), 0);
  fuse_lk_out held;
  std::memcpy(&held, body.data(), sizeof(held));
  EXPECT_EQ(held.lk.type, static_cast<uint32_t>(F_WRLCK));
  EXPECT_EQ(held.lk.start, 0u);
  EXPECT_EQ(held.lk.end, 99u);
  // A host process sees the guest's lock.
  const int host_fd = open((dir + "/file").c_str(), O_RDWR);
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = 10;
  fl.l_len = 1;
  EXPECT_EQ(fcntl(host_fd, F_OFD_SETLK, &fl), -1);
  EXPECT_EQ(errno, EAGAIN);
  // Owner 1 closes the file: its locks go.
  fuse_flush_in flush{};
  flush.lock_owner = 1;
  EXPECT_EQ(SendRequest(*server, FUSE_FLUSH, entry.nodeid,
                        std::string(reinterpret_cast<char*>(&flush), sizeof(flush)), nullptr),
            EBADF);  // no such handle: but the lock owner's file is closed all the same
  EXPECT_EQ(lock(FUSE_SETLK, 2, F_WRLCK, 50, 60, nullptr), 0);
  // Bad ranges and types.
  EXPECT_EQ(lock(FUSE_SETLK, 3, F_WRLCK, 10, 5, nullptr), EINVAL);
  EXPECT_EQ(lock(FUSE_SETLK, 3, 77, 0, 1, nullptr), EINVAL);
  close(host_fd);
  RemoveTree(dir);
}

}  // namespace
}  // namespace vhost

namespace vhost {
namespace {

template <typename T>
std::string Raw(const T& v) {
  return std::string(reinterpret_cast<const char*>(&v), sizeof(v));
}
std::string Z(const std::string& s) { return s + '\0'; }

// What a hostile guest kernel can send about files that are not regular files or directories,
// about setuid files, ids and sessions.
class FuseServerHostileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Not $TEST_TMPDIR: a Unix socket made here must fit sun_path (108 bytes).
    char tmpl[] = "/tmp/fuse-hostile-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override {
    server_.reset();
    RemoveTree(dir_);
  }
  void Start(FsOptions options = {}) {
    options.shared_dir = dir_;
    ASSERT_OK_AND_ASSIGN(server_, FuseServer::Create(options));
    fuse_init_in init{};
    init.major = FUSE_KERNEL_VERSION;
    init.minor = FUSE_KERNEL_MINOR_VERSION;
    ASSERT_EQ(Send(FUSE_INIT, 0, Raw(init)), 0);
  }
  int Send(uint32_t opcode, uint64_t nodeid, const std::string& args, std::string* body = nullptr) {
    return SendRequest(*server_, opcode, nodeid, args, body);
  }
  uint64_t Lookup(const std::string& name) {
    std::string body;
    if (Send(FUSE_LOOKUP, kRootNodeId, Z(name), &body) != 0) return 0;
    fuse_entry_out entry{};
    std::memcpy(&entry, body.data(), std::min(sizeof(entry), body.size()));
    return entry.nodeid;
  }
  int Open(uint64_t node, int flags, uint64_t* fh = nullptr) {
    fuse_open_in in{};
    in.flags = flags;
    std::string body;
    const int err = Send(FUSE_OPEN, node, Raw(in), &body);
    if (err == 0 && fh != nullptr) {
      fuse_open_out out{};
      std::memcpy(&out, body.data(), std::min(sizeof(out), body.size()));
      *fh = out.fh;
    }
    return err;
  }
  int CreateOver(const std::string& name, int flags) {
    fuse_create_in in{};
    in.flags = flags;
    in.mode = S_IFREG | 0644;
    return Send(FUSE_CREATE, kRootNodeId, Raw(in) + Z(name));
  }
  int Mknod(const std::string& name, mode_t mode, dev_t rdev) {
    fuse_mknod_in in{};
    in.mode = mode;
    in.rdev = static_cast<uint32_t>(rdev);
    return Send(FUSE_MKNOD, kRootNodeId, Raw(in) + Z(name));
  }
  int Truncate(uint64_t node, uint64_t size, uint64_t fh = 0) {
    fuse_setattr_in in{};
    in.valid = FATTR_SIZE | (fh ? FATTR_FH : 0);
    in.size = size;
    in.fh = fh;
    return Send(FUSE_SETATTR, node, Raw(in));
  }
  // The four xattr operations on `node`; each one's errno.
  std::vector<int> Xattrs(uint64_t node) {
    fuse_getxattr_in get{};
    get.size = 64;
    fuse_setxattr_in set{};
    set.size = 1;
    return {Send(FUSE_GETXATTR, node, Raw(get) + Z("user.x")), Send(FUSE_LISTXATTR, node, Raw(get)),
            Send(FUSE_SETXATTR, node,
                 Raw(set).substr(0, FUSE_COMPAT_SETXATTR_IN_SIZE) + Z("user.x") + "v"),
            Send(FUSE_REMOVEXATTR, node, Z("user.x"))};
  }
  mode_t ModeOf(const std::string& name) {
    struct stat st {};
    EXPECT_EQ(lstat((dir_ + "/" + name).c_str(), &st), 0) << name;
    return st.st_mode;
  }
  std::string dir_;
  std::unique_ptr<FuseServer> server_;
};

TEST_F(FuseServerHostileTest, DeviceNodesAreNeitherMadeNorOpened) {
  FsOptions options;
  options.xattr = true;
  Start(options);
  EXPECT_EQ(Mknod("null", S_IFCHR | 0666, makedev(1, 3)), EPERM);
  EXPECT_EQ(Mknod("loop", S_IFBLK | 0600, makedev(7, 0)), EPERM);
  struct stat st;
  EXPECT_NE(lstat((dir_ + "/null").c_str(), &st), 0);
  EXPECT_NE(lstat((dir_ + "/loop").c_str(), &st), 0);
  // FIFOs, sockets and regular files may be made: only opening them is refused.
  EXPECT_EQ(Mknod("fifo", S_IFIFO | 0644, 0), 0);
  EXPECT_EQ(Mknod("sock", S_IFSOCK | 0644, 0), 0);
  EXPECT_EQ(Mknod("plain", S_IFREG | 0644, 0), 0);
  EXPECT_TRUE(S_ISFIFO(ModeOf("fifo")));
  // A device node already in the share (made on the host) is never opened, however asked.
  ASSERT_EQ(mknod((dir_ + "/hostnull").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
  const uint64_t node = Lookup("hostnull");
  ASSERT_NE(node, 0u);
  for (int flags : {O_RDONLY, O_WRONLY, O_RDWR, O_RDWR | O_NONBLOCK}) {
    EXPECT_EQ(Open(node, flags), EACCES) << flags;
  }
  EXPECT_EQ(CreateOver("hostnull", O_RDWR), EACCES);
  EXPECT_EQ(CreateOver("hostnull", O_WRONLY | O_TRUNC), EACCES);
  EXPECT_EQ(CreateOver("hostnull", O_RDWR | O_EXCL), EEXIST);
  EXPECT_EQ(Truncate(node, 0), EINVAL);
  EXPECT_EQ(Xattrs(node), std::vector<int>(4, ENOTSUP));
  EXPECT_EQ(Send(FUSE_GETATTR, node, Raw(fuse_getattr_in{})), 0);  // it is still there to see
  EXPECT_EQ(server_->inodes().handle_count(), 0u);
  // Regular files and directories open as before.
  EXPECT_EQ(Open(Lookup("plain"), O_RDWR), 0);
  EXPECT_EQ(CreateOver("plain", O_RDWR), 0);
}

TEST_F(FuseServerHostileTest, DeviceNodesMayBeMadeWhenAllowedButNeverOpened) {
  FsOptions options;
  options.allow_device_nodes = true;
  Start(options);
  ASSERT_EQ(Mknod("null", S_IFCHR | 0666, makedev(1, 3)), 0);
  struct stat st;
  ASSERT_EQ(lstat((dir_ + "/null").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(1, 3));
  EXPECT_EQ(Open(Lookup("null"), O_RDWR), EACCES);
}

// Opening a FIFO without a peer blocks; opening a socket fails. Neither may hold the thread
// serving the request (on the old code the O_RDONLY open below never returns).
TEST_F(FuseServerHostileTest, FifosAndSocketsNeverBlockAServingThread) {
  FsOptions options;
  options.xattr = true;
  options.posix_lock = true;
  Start(options);
  ASSERT_EQ(mkfifo((dir_ + "/fifo").c_str(), 0666), 0);
  const uint64_t fifo = Lookup("fifo");
  ASSERT_NE(fifo, 0u);
  EXPECT_EQ(Open(fifo, O_RDWR | O_NONBLOCK), ENXIO);
  EXPECT_EQ(Open(fifo, O_RDONLY), ENXIO);
  EXPECT_EQ(Open(fifo, O_WRONLY), ENXIO);
  EXPECT_EQ(CreateOver("fifo", O_WRONLY), ENXIO);
  EXPECT_EQ(Xattrs(fifo), std::vector<int>(4, ENOTSUP));
  EXPECT_EQ(Truncate(fifo, 0), EINVAL);
  fuse_lk_in lk{};
  lk.owner = 1;
  lk.lk = {0, 10, F_WRLCK, 0};
  EXPECT_EQ(Send(FUSE_SETLK, fifo, Raw(lk)), ENXIO);
  // A listening socket in the share.
  const int s = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string path = dir_ + "/sock";
  ASSERT_LT(path.size(), sizeof(addr.sun_path));
  std::strcpy(addr.sun_path, path.c_str());
  ASSERT_EQ(bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(s, 1), 0);
  const uint64_t sock = Lookup("sock");
  ASSERT_NE(sock, 0u);
  EXPECT_EQ(Open(sock, O_RDWR), ENXIO);
  EXPECT_EQ(Xattrs(sock), std::vector<int>(4, ENOTSUP));
  close(s);
  // Directories keep their xattrs.
  fuse_getxattr_in get{};
  EXPECT_NE(Send(FUSE_LISTXATTR, kRootNodeId, Raw(get)), ENOTSUP);
  EXPECT_EQ(Truncate(kRootNodeId, 0), EISDIR);
  EXPECT_EQ(server_->inodes().handle_count(), 0u);
}

// FUSE_HANDLE_KILLPRIV: the server clears setuid (and setgid with group execute) on write,
// truncate and copy, as the kernel does for writers without CAP_FSETID; we keep CAP_FSETID.
TEST_F(FuseServerHostileTest, WritesTruncatesAndCopiesClearSetuid) {
  Start();
  for (const char* name : {"suid", "sgid_noexec", "src"}) {
    std::ofstream(dir_ + "/" + name) << "0123456789";
  }
  auto set_mode = [&](const char* name, mode_t mode) {
    ASSERT_EQ(chmod((dir_ + "/" + name).c_str(), mode), 0);
  };
  set_mode("sgid_noexec", 02745);  // setgid without group execute marks locking, no privilege
  const uint64_t suid = Lookup("suid"), sgid = Lookup("sgid_noexec"), src = Lookup("src");
  uint64_t fh = 0, src_fh = 0, sgid_fh = 0;
  ASSERT_EQ(Open(suid, O_RDWR, &fh), 0);
  ASSERT_EQ(Open(src, O_RDONLY, &src_fh), 0);
  ASSERT_EQ(Open(sgid, O_RDWR, &sgid_fh), 0);

  set_mode("suid", 06775);
  fuse_write_in write{};
  write.fh = fh;
  write.size = 1;
  EXPECT_EQ(Send(FUSE_WRITE, suid, Raw(write) + "w"), 0);
  EXPECT_EQ(ModeOf("suid") & 07777, 0775u) << "WRITE";

  set_mode("suid", 06775);
  EXPECT_EQ(Truncate(suid, 3), 0);
  EXPECT_EQ(ModeOf("suid") & 07777, 0775u) << "SETATTR size";

  set_mode("suid", 06775);
  EXPECT_EQ(Truncate(suid, 2, fh), 0);
  EXPECT_EQ(ModeOf("suid") & 07777, 0775u) << "SETATTR size through a handle";

  set_mode("suid", 06775);
  fuse_copy_file_range_in copy{};
  copy.fh_in = src_fh;
  copy.nodeid_out = suid;
  copy.fh_out = fh;
  copy.len = 5;
  EXPECT_EQ(Send(FUSE_COPY_FILE_RANGE, src, Raw(copy)), 0);
  EXPECT_EQ(ModeOf("suid") & 07777, 0775u) << "COPY_FILE_RANGE";

  set_mode("suid", 06775);
  fuse_fallocate_in falloc{};
  falloc.fh = fh;
  falloc.length = 4096;
  EXPECT_EQ(Send(FUSE_FALLOCATE, suid, Raw(falloc)), 0);
  EXPECT_EQ(ModeOf("suid") & 07777, 0775u) << "FALLOCATE";

  set_mode("suid", 06775);
  EXPECT_EQ(Open(suid, O_WRONLY | O_TRUNC), 0);
  EXPECT_EQ(ModeOf("suid") & 07777, 0775u) << "OPEN with O_TRUNC";

  // Reading and opening without truncation keep the bits; so does setgid without group execute.
  set_mode("suid", 06775);
  EXPECT_EQ(Open(suid, O_RDWR), 0);
  fuse_read_in read{};
  read.fh = fh;
  read.size = 4;
  EXPECT_EQ(Send(FUSE_READ, suid, Raw(read)), 0);
  EXPECT_EQ(ModeOf("suid") & 07777, 06775u);
  write.fh = sgid_fh;
  EXPECT_EQ(Send(FUSE_WRITE, sgid, Raw(write) + "w"), 0);
  EXPECT_EQ(ModeOf("sgid_noexec") & 07777, 02745u);
}

// --translate-uid=0:1000:1: guest root is host 1000. Guest 1000 would land on host 1000 too and
// come back as guest root: refused. Host root has no guest id: shown as the overflow id.
TEST(FuseServerIdMapTest, IdsNeverAlias) {
  std::string tmpl = TempTemplate("fuse-alias-");
  const std::string dir = mkdtemp(tmpl.data());
  chmod(dir.c_str(), 0777);
  std::ofstream(dir + "/host_root_file") << "x";
  FsOptions options;
  options.shared_dir = dir;
  ASSERT_OK_AND_ASSIGN(options.uids, IdMap::Parse("0:1000:1", "--translate-uid"));
  ASSERT_OK_AND_ASSIGN(options.gids, IdMap::Parse("0:1000:1", "--translate-gid"));
  ASSERT_OK_AND_ASSIGN(auto server, FuseServer::Create(options));
  fuse_create_in create{};
  create.flags = O_RDWR;
  create.mode = 04755;
  std::string body;
  // Guest user 1000 creates a file: refused (it would belong to host 1000, the guest's root).
  EXPECT_EQ(
      SendRequest(*server, FUSE_CREATE, kRootNodeId, Raw(create) + Z("by1000"), &body, 1000, 1000),
      EPERM);
  struct stat st;
  EXPECT_NE(lstat((dir + "/by1000").c_str(), &st), 0);
  EXPECT_EQ(SendRequest(*server, FUSE_CREATE, kRootNodeId, Raw(create) + Z("by5"), &body, 5, 1000),
            EPERM);  // the group collides
  // A file of the host's root is nobody's in the guest, not the guest root's.
  ASSERT_EQ(SendRequest(*server, FUSE_LOOKUP, kRootNodeId, Z("host_root_file"), &body), 0);
  fuse_entry_out entry;
  std::memcpy(&entry, body.data(), sizeof(entry));
  if (geteuid() == 0) {
    EXPECT_EQ(entry.attr.uid, IdMap::kOverflowId);
    EXPECT_EQ(entry.attr.gid, IdMap::kOverflowId);
  }
  // chown to a colliding id: refused; to a mapped or free one: done.
  fuse_setattr_in set{};
  set.valid = FATTR_UID;
  set.uid = 1000;
  EXPECT_EQ(SendRequest(*server, FUSE_SETATTR, entry.nodeid, Raw(set)), EPERM);
  set.valid = FATTR_GID;
  set.gid = 1000;
  EXPECT_EQ(SendRequest(*server, FUSE_SETATTR, entry.nodeid, Raw(set)), EPERM);
  set.valid = FATTR_UID | FATTR_GID;
  set.uid = 0;
  set.gid = 7;
  if (geteuid() == 0) {
    ASSERT_EQ(SendRequest(*server, FUSE_SETATTR, entry.nodeid, Raw(set), &body), 0);
    ASSERT_EQ(lstat((dir + "/host_root_file").c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, 1000u);
    EXPECT_EQ(st.st_gid, 7u);
    fuse_attr_out attr;
    std::memcpy(&attr, body.data(), sizeof(attr));
    EXPECT_EQ(attr.attr.uid, 0u);
    EXPECT_EQ(attr.attr.gid, 7u);
  }
  RemoveTree(dir);
}

TEST(IdMapTest, EveryIdRoundTripsOrHasNoImage) {
  ASSERT_OK_AND_ASSIGN(IdMap map, IdMap::Parse("0:1000:1", "--translate-uid"));
  EXPECT_EQ(map.GuestToHost(0), 1000u);
  EXPECT_EQ(map.HostToGuest(1000), 0u);
  EXPECT_EQ(map.GuestToHost(1000), std::nullopt);     // would alias guest 0
  EXPECT_EQ(map.HostToGuest(0), IdMap::kOverflowId);  // guest 0 is host 1000's
  EXPECT_EQ(map.GuestToHost(5), 5u);
  EXPECT_EQ(map.HostToGuest(5), 5u);
  ASSERT_OK_AND_ASSIGN(IdMap wide, IdMap::Parse("0:100000:65536,70000:1000:10", "--translate-uid"));
  for (uint32_t id = 0; id < 200000; id += 7) {
    if (std::optional<uint32_t> host = wide.GuestToHost(id)) {
      EXPECT_EQ(wide.HostToGuest(*host), id) << id;
    }
    const uint32_t guest = wide.HostToGuest(id);
    if (guest != IdMap::kOverflowId) {
      EXPECT_EQ(wide.GuestToHost(guest), id) << id;
    }
  }
  EXPECT_EQ(wide.GuestToHost(100005), std::nullopt);
  EXPECT_EQ(wide.GuestToHost(70003), 1003u);
  EXPECT_EQ(wide.HostToGuest(1003), 70003u);
  EXPECT_EQ(wide.HostToGuest(70003), IdMap::kOverflowId);
  ASSERT_OK_AND_ASSIGN(IdMap none, IdMap::Parse("", "--translate-uid"));
  EXPECT_EQ(none.GuestToHost(1000), 1000u);
  EXPECT_EQ(none.HostToGuest(0), 0u);
}

TEST_F(FuseServerHostileTest, DestroyAndResetDropEverythingButTheRoot) {
  for (int i = 0; i < 10; ++i) std::ofstream(dir_ + "/f" + std::to_string(i)) << "data";
  auto count_fds = [] {
    int n = 0;
    DIR* d = opendir("/proc/self/fd");
    while (dirent* e = readdir(d)) n += e->d_name[0] != '.';
    closedir(d);
    return n;
  };
  const int host_fd = open((dir_ + "/f0").c_str(), O_RDWR);
  ASSERT_GE(host_fd, 0);
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_len = 1;
  FsOptions options;
  options.posix_lock = true;
  options.shared_dir = dir_;
  for (bool device_reset : {false, true}) {
    SCOPED_TRACE(device_reset ? "device reset" : "FUSE_DESTROY");
    Start(options);
    const int fresh = count_fds();  // the root, /proc/self/fd and the test's own
    for (int i = 0; i < 10; ++i) {
      const uint64_t node = Lookup("f" + std::to_string(i));
      ASSERT_NE(node, 0u);
      ASSERT_EQ(Open(node, O_RDWR), 0);
      ASSERT_EQ(Open(node, O_RDONLY), 0);
      fuse_lk_in lk{};
      lk.owner = 100 + i;
      lk.lk = {0, 0, F_WRLCK, 0};
      ASSERT_EQ(Send(FUSE_SETLK, node, Raw(lk)), 0);
    }
    fuse_open_in opendir_in{};
    ASSERT_EQ(Send(FUSE_OPENDIR, kRootNodeId, Raw(opendir_in)), 0);
    EXPECT_EQ(server_->inodes().size(), 11u);
    EXPECT_EQ(server_->inodes().handle_count(), 21u);
    EXPECT_GE(count_fds(), fresh + 40);
    EXPECT_EQ(fcntl(host_fd, F_OFD_SETLK, &fl), -1);  // the guest holds it
    std::unique_ptr<FsDevice> device;                 // the server, kept alive past the reset
    if (device_reset) {
      device = std::make_unique<FsDevice>(std::move(server_), "t", 1);
      device->Reset();
    } else {
      EXPECT_EQ(Send(FUSE_DESTROY, 0, ""), 0);
      EXPECT_EQ(Send(FUSE_GETATTR, 2, Raw(fuse_getattr_in{})), ESTALE);  // old node ids are gone
      EXPECT_EQ(Send(FUSE_GETATTR, kRootNodeId, Raw(fuse_getattr_in{})), 0);
    }
    FuseServer& server = device ? device->server() : *server_;
    EXPECT_EQ(server.inodes().size(), 1u);
    EXPECT_EQ(server.inodes().handle_count(), 0u);
    EXPECT_EQ(count_fds(), fresh);
    fl.l_type = F_WRLCK;
    EXPECT_EQ(fcntl(host_fd, F_OFD_SETLK, &fl), 0) << strerror(errno);  // a host process may
    fl.l_type = F_UNLCK;
    fcntl(host_fd, F_OFD_SETLK, &fl);
    fl.l_type = F_WRLCK;
  }
  close(host_fd);
}

TEST_F(FuseServerHostileTest, LockOwnersAreBounded) {
  std::ofstream(dir_ + "/file") << "data";
  FsOptions options;
  options.posix_lock = true;
  options.max_lock_files = 8;
  Start(options);
  const uint64_t node = Lookup("file");
  auto lock = [&](uint64_t owner, uint64_t start) {
    fuse_lk_in lk{};
    lk.owner = owner;
    lk.lk = {start, start, F_RDLCK, 0};
    return Send(FUSE_SETLK, node, Raw(lk));
  };
  for (uint64_t owner = 1; owner <= 8; ++owner) EXPECT_EQ(lock(owner, owner), 0) << owner;
  EXPECT_EQ(lock(9, 9), ENOLCK);
  EXPECT_EQ(lock(3, 30), 0);  // an owner already holding locks may take more
  fuse_flush_in flush{};
  flush.lock_owner = 1;
  Send(FUSE_FLUSH, node, Raw(flush));  // owner 1 closes the file: its slot is free
  EXPECT_EQ(lock(9, 9), 0);
  EXPECT_EQ(lock(10, 10), ENOLCK);
}

// Each open directory holds a descriptor and a batch of entries: at most max_open_dirs are
// open at a time; OPENDIR past it fails with EMFILE until the guest closes one. Files do not count.
TEST_F(FuseServerHostileTest, OpenDirectoriesAreBounded) {
  std::ofstream(dir_ + "/file") << "data";
  FsOptions options;
  options.max_open_dirs = 8;
  Start(options);
  auto opendir = [&](uint64_t* fh) {
    fuse_open_in in{};
    std::string body;
    const int err = Send(FUSE_OPENDIR, kRootNodeId, Raw(in), &body);
    fuse_open_out out{};
    std::memcpy(&out, body.data(), std::min(sizeof(out), body.size()));
    *fh = out.fh;
    return err;
  };
  std::vector<uint64_t> dirs(8);
  for (uint64_t& fh : dirs) ASSERT_EQ(opendir(&fh), 0);
  uint64_t fh;
  EXPECT_EQ(opendir(&fh), EMFILE);
  EXPECT_EQ(server_->inodes().dir_count(), 8u);
  const uint64_t file = Lookup("file");
  EXPECT_EQ(Open(file, O_RDONLY), 0);  // files are not directories
  fuse_release_in release{};
  release.fh = dirs[3];
  ASSERT_EQ(Send(FUSE_RELEASEDIR, kRootNodeId, Raw(release)), 0);
  EXPECT_EQ(opendir(&fh), 0);
  EXPECT_EQ(opendir(&fh), EMFILE);
  // A new session starts with none open.
  ASSERT_EQ(Send(FUSE_DESTROY, 0, ""), 0);
  EXPECT_EQ(server_->inodes().dir_count(), 0u);
}

// Every inode the guest holds is an O_PATH descriptor: the descriptor limit (raised to the hard
// limit at start-up) bounds them. Past it LOOKUP fails with EMFILE, and a FORGET makes room.
TEST_F(FuseServerHostileTest, InodesAreBoundedByTheDescriptorLimit) {
  for (int i = 0; i < 64; ++i) std::ofstream(dir_ + "/f" + std::to_string(i)) << i;
  Start();
  int open_fds = 0;
  DIR* d = opendir("/proc/self/fd");
  while (dirent* e = readdir(d)) open_fds += e->d_name[0] != '.';
  closedir(d);
  --open_fds;  // the stream's own
  rlimit saved;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  rlimit low = saved;
  low.rlim_cur = open_fds + 16;  // room for about 16 inodes (and the reopen a lookup does)
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  struct Restore {
    rlimit limit;
    ~Restore() { setrlimit(RLIMIT_NOFILE, &limit); }
  } restore{saved};
  std::vector<uint64_t> nodes;
  int refused = 0;
  for (int i = 0; i < 64; ++i) {
    std::string body;
    const int err = Send(FUSE_LOOKUP, kRootNodeId, Z("f" + std::to_string(i)), &body);
    if (err == 0) {
      fuse_entry_out entry{};
      std::memcpy(&entry, body.data(), std::min(sizeof(entry), body.size()));
      nodes.push_back(entry.nodeid);
    } else {
      EXPECT_EQ(err, EMFILE);
      ++refused;
    }
  }
  EXPECT_GT(refused, 0);
  EXPECT_LE(server_->inodes().size(), 1u + 16u);
  ASSERT_FALSE(nodes.empty());
  EXPECT_EQ(Lookup("f63"), 0u);
  fuse_forget_in forget{};
  forget.nlookup = 1;
  Send(FUSE_FORGET, nodes[0], Raw(forget));  // no reply
  EXPECT_NE(Lookup("f63"), 0u);
}

}  // namespace
}  // namespace vhost

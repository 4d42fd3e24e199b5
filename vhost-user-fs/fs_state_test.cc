// The FUSE session carried by a live migration: saved by one server and loaded into a fresh one
// over the same shared directory, node ids, lookup counts and file handles go on working;
// files gone meanwhile answer ESTALE/EBADF; hostile states are refused whole, hostile paths
// (out of the share, through symlinks) are dropped and never opened.
#include <fcntl.h>
#include <linux/fuse.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "vhost-user-fs/fuse_server.h"

namespace vhost {
namespace {

using ::vhost::testing::StatusIs;

std::string TempTemplate(const std::string& name) {
  const char* dir = getenv("TEST_TMPDIR");
  return std::string(dir != nullptr && *dir != '\0' ? dir : "/tmp") + "/" + name + "XXXXXX";
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

template <typename T>
std::string Bytes(const T& v) {
  return std::string(reinterpret_cast<const char*>(&v), sizeof(v));
}
template <typename T>
T As(const std::string& body) {
  T v{};
  std::memcpy(&v, body.data(), std::min(sizeof(T), body.size()));
  return v;
}
std::string Name(const std::string& n) { return n + std::string(1, '\0'); }

// A state built by hand, in the format fs_state.cc documents.
class StateBuilder {
 public:
  StateBuilder& Header(uint32_t version = 1, uint64_t next_nodeid = 100, uint64_t next_fh = 100) {
    out_ = "VUFS";
    U32(version);
    U64(next_nodeid);
    U64(next_fh);
    return *this;
  }
  StateBuilder& U32(uint32_t v) {
    out_ += Bytes(v);
    return *this;
  }
  StateBuilder& U64(uint64_t v) {
    out_ += Bytes(v);
    return *this;
  }
  StateBuilder& Inode(uint64_t nodeid, uint64_t nlookup, uint32_t type, const std::string& path) {
    U64(nodeid).U64(nlookup).U32(type).U32(path.size());
    out_ += path;
    return *this;
  }
  StateBuilder& Handle(uint64_t fh, uint64_t nodeid, uint32_t flags, const std::string& path) {
    U64(fh).U64(nodeid).U32(flags).U32(path.size());
    out_ += path;
    return *this;
  }
  std::string str() const { return out_; }

 private:
  std::string out_;
};

class FsStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = TempTemplate("fs-state-");
    base_ = mkdtemp(tmpl.data());
    shared_ = base_ + "/shared";
    mkdir(shared_.c_str(), 0755);
    mkdir((shared_ + "/dir").c_str(), 0755);
    mkdir((base_ + "/outside").c_str(), 0755);
    std::ofstream(base_ + "/outside/secret") << "secret";
    std::ofstream(base_ + "/outside.txt") << "secret";
    std::ofstream(shared_ + "/hello.txt") << "hello world";
    std::ofstream(shared_ + "/dir/inner.txt") << "inner";
    ASSERT_EQ(symlink("../outside", (shared_ + "/outlink").c_str()), 0);
    ASSERT_EQ(symlink("../outside.txt", (shared_ + "/escape").c_str()), 0);
    source_ = MakeServer();
    fuse_init_in init{};
    init.major = FUSE_KERNEL_VERSION;
    init.minor = FUSE_KERNEL_MINOR_VERSION;
    ASSERT_EQ(Send(*source_, FUSE_INIT, 0, Bytes(init)).error, 0);
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(base_, ignored);
  }

  std::unique_ptr<FuseServer> MakeServer(bool posix_lock = false) {
    FsOptions options;
    options.shared_dir = shared_;
    options.posix_lock = posix_lock;
    absl::StatusOr<std::unique_ptr<FuseServer>> server = FuseServer::Create(options);
    EXPECT_OK(server);
    return server.ok() ? *std::move(server) : nullptr;
  }

  struct Reply {
    int error = 1;
    std::string body;
  };
  Reply Send(FuseServer& server, uint32_t opcode, uint64_t nodeid, const std::string& args,
             const std::string& data = "") {
    fuse_in_header in{};
    in.opcode = opcode;
    in.unique = ++unique_;
    in.nodeid = nodeid;
    in.uid = getuid();
    in.gid = getgid();
    std::string request = Bytes(in) + args + data;
    reinterpret_cast<fuse_in_header*>(request.data())->len = request.size();
    std::vector<char> out(sizeof(fuse_out_header) + 65536);
    DescriptorChain chain;
    chain.readable.push_back({request.data(), request.size()});
    chain.readable_bytes = request.size();
    chain.writable.push_back({out.data(), out.size()});
    chain.writable_bytes = out.size();
    Reply r;
    const uint32_t len = server.Handle(chain);
    if (len >= sizeof(fuse_out_header)) {
      fuse_out_header o;
      std::memcpy(&o, out.data(), sizeof(o));
      r.error = -o.error;
      r.body.assign(out.data() + sizeof(o), len - sizeof(o));
    }
    return r;
  }
  uint64_t Lookup(FuseServer& server, uint64_t parent, const std::string& name) {
    Reply r = Send(server, FUSE_LOOKUP, parent, Name(name));
    EXPECT_EQ(r.error, 0) << name;
    return r.error ? 0 : As<fuse_entry_out>(r.body).nodeid;
  }
  uint64_t Open(FuseServer& server, uint64_t nodeid, int flags, uint32_t opcode = FUSE_OPEN) {
    fuse_open_in in{};
    in.flags = flags;
    Reply r = Send(server, opcode, nodeid, Bytes(in));
    EXPECT_EQ(r.error, 0);
    return As<fuse_open_out>(r.body).fh;
  }
  Reply Read(FuseServer& server, uint64_t nodeid, uint64_t fh, uint64_t offset = 0) {
    fuse_read_in in{};
    in.fh = fh;
    in.offset = offset;
    in.size = 4096;
    return Send(server, FUSE_READ, nodeid, Bytes(in));
  }
  Reply Write(FuseServer& server, uint64_t nodeid, uint64_t fh, uint64_t offset,
              const std::string& data) {
    fuse_write_in in{};
    in.fh = fh;
    in.offset = offset;
    in.size = data.size();
    return Send(server, FUSE_WRITE, nodeid, Bytes(in), data);
  }
  int GetAttr(FuseServer& server, uint64_t nodeid) {
    return Send(server, FUSE_GETATTR, nodeid, Bytes(fuse_getattr_in{})).error;
  }
  // The source's session, saved and loaded into a fresh server over the same directory.
  std::unique_ptr<FuseServer> Migrate() {
    absl::StatusOr<std::string> state = source_->SaveState();
    EXPECT_OK(state);
    std::unique_ptr<FuseServer> destination = MakeServer();
    EXPECT_OK(destination->LoadState(state.ok() ? *state : ""));
    return destination;
  }

  std::string base_, shared_;
  std::unique_ptr<FuseServer> source_;
  uint64_t unique_ = 0;
};

TEST_F(FsStateTest, NodeIdsAndHandlesGoOnWorkingOnTheDestination) {
  const uint64_t dir = Lookup(*source_, kRootNodeId, "dir");
  const uint64_t inner = Lookup(*source_, dir, "inner.txt");
  const uint64_t hello = Lookup(*source_, kRootNodeId, "hello.txt");
  const uint64_t hello_fh = Open(*source_, hello, O_RDONLY);
  const uint64_t dir_fh = Open(*source_, dir, O_RDONLY, FUSE_OPENDIR);
  // A file created and written, and an existing one opened with O_TRUNC: neither is created or
  // truncated again by the destination.
  fuse_create_in create{};
  create.flags = O_RDWR | O_CREAT | O_TRUNC;
  create.mode = S_IFREG | 0644;
  Reply created = Send(*source_, FUSE_CREATE, dir, Bytes(create), Name("new.txt"));
  ASSERT_EQ(created.error, 0);
  const uint64_t made = As<fuse_entry_out>(created.body).nodeid;
  const uint64_t made_fh = As<fuse_open_out>(created.body.substr(sizeof(fuse_entry_out))).fh;
  ASSERT_EQ(Write(*source_, made, made_fh, 0, "before|").error, 0);
  const uint64_t inner_fh = Open(*source_, inner, O_RDWR | O_TRUNC);
  ASSERT_EQ(Write(*source_, inner, inner_fh, 0, "kept").error, 0);

  std::unique_ptr<FuseServer> destination = Migrate();
  EXPECT_EQ(destination->inodes().size(), source_->inodes().size());
  EXPECT_EQ(destination->inodes().handle_count(), 4u);
  EXPECT_EQ(ReadFile(shared_ + "/dir/inner.txt"), "kept");  // not truncated again

  // The same file handles: writes go on where they were, reads see everything.
  ASSERT_EQ(Write(*destination, made, made_fh, 7, "after").error, 0);
  EXPECT_EQ(Read(*destination, made, made_fh).body, "before|after");
  EXPECT_EQ(ReadFile(shared_ + "/dir/new.txt"), "before|after");
  EXPECT_EQ(Read(*destination, hello, hello_fh, 6).body, "world");
  EXPECT_EQ(Read(*destination, inner, inner_fh).body, "kept");
  // The same node ids: a child of a restored directory is found, as the node it was.
  EXPECT_EQ(GetAttr(*destination, inner), 0);
  EXPECT_EQ(Lookup(*destination, dir, "inner.txt"), inner);
  EXPECT_EQ(Lookup(*destination, dir, "new.txt"), made);
  // The restored directory handle reads its entries.
  fuse_read_in list{};
  list.fh = dir_fh;
  list.size = 4096;
  Reply entries = Send(*destination, FUSE_READDIR, dir, Bytes(list));
  ASSERT_EQ(entries.error, 0);
  EXPECT_NE(entries.body.find("inner.txt"), std::string::npos);
  EXPECT_NE(entries.body.find("new.txt"), std::string::npos);
  // New nodes never take an id the guest held.
  std::ofstream(shared_ + "/later.txt") << "later";
  EXPECT_GT(Lookup(*destination, kRootNodeId, "later.txt"), std::max({dir, inner, hello, made}));
}

TEST_F(FsStateTest, LookupCountsAreCarried) {
  const uint64_t hello = Lookup(*source_, kRootNodeId, "hello.txt");
  ASSERT_EQ(Lookup(*source_, kRootNodeId, "hello.txt"), hello);  // two lookups
  std::unique_ptr<FuseServer> destination = Migrate();
  fuse_forget_in forget{};
  forget.nlookup = 1;
  Send(*destination, FUSE_FORGET, hello, Bytes(forget));
  EXPECT_EQ(GetAttr(*destination, hello), 0);  // one lookup left
  Send(*destination, FUSE_FORGET, hello, Bytes(forget));
  EXPECT_EQ(GetAttr(*destination, hello), ESTALE);
  EXPECT_EQ(destination->inodes().size(), 1u);  // the root
}

TEST_F(FsStateTest, FilesRenamedOnTheHostAreFoundByTheirNewName) {
  const uint64_t dir = Lookup(*source_, kRootNodeId, "dir");
  const uint64_t inner = Lookup(*source_, dir, "inner.txt");
  const uint64_t fh = Open(*source_, inner, O_RDONLY);
  ASSERT_EQ(rename((shared_ + "/dir").c_str(), (shared_ + "/moved").c_str()), 0);
  std::unique_ptr<FuseServer> destination = Migrate();
  EXPECT_EQ(Read(*destination, inner, fh).body, "inner");
  EXPECT_EQ(Lookup(*destination, kRootNodeId, "moved"), dir);
}

TEST_F(FsStateTest, FilesGoneBeforeTheLoadAnswerEstaleAndEbadf) {
  std::ofstream(shared_ + "/gone.txt") << "gone";
  std::ofstream(shared_ + "/retyped") << "a file";
  const uint64_t gone = Lookup(*source_, kRootNodeId, "gone.txt");
  const uint64_t gone_fh = Open(*source_, gone, O_RDONLY);
  const uint64_t retyped = Lookup(*source_, kRootNodeId, "retyped");
  const uint64_t hello = Lookup(*source_, kRootNodeId, "hello.txt");
  absl::StatusOr<std::string> state = source_->SaveState();
  ASSERT_OK(state);
  // Between the source's save and the destination's load, the host removes one file and puts a
  // directory in place of another.
  ASSERT_EQ(unlink((shared_ + "/gone.txt").c_str()), 0);
  ASSERT_EQ(unlink((shared_ + "/retyped").c_str()), 0);
  ASSERT_EQ(mkdir((shared_ + "/retyped").c_str(), 0755), 0);
  std::unique_ptr<FuseServer> destination = MakeServer();
  ASSERT_OK(destination->LoadState(*state));
  EXPECT_EQ(GetAttr(*destination, gone), ESTALE);
  EXPECT_EQ(Read(*destination, gone, gone_fh).error, EBADF);
  EXPECT_EQ(GetAttr(*destination, retyped), ESTALE);
  EXPECT_EQ(GetAttr(*destination, hello), 0);  // the rest is there
}

TEST_F(FsStateTest, AFileUnlinkedWhileOpenIsNotCarried) {
  std::ofstream(shared_ + "/tmp.txt") << "temporary";
  const uint64_t node = Lookup(*source_, kRootNodeId, "tmp.txt");
  const uint64_t fh = Open(*source_, node, O_RDONLY);
  ASSERT_EQ(Send(*source_, FUSE_UNLINK, kRootNodeId, Name("tmp.txt")).error, 0);
  // Another file now has its name: it must not stand in for the unlinked one.
  std::ofstream(shared_ + "/tmp.txt") << "another file";
  std::unique_ptr<FuseServer> destination = Migrate();
  EXPECT_EQ(GetAttr(*destination, node), ESTALE);
  EXPECT_EQ(Read(*destination, node, fh).error, EBADF);
}

TEST_F(FsStateTest, HeldHostLocksAreNotSaved) {
  source_ = MakeServer(/*posix_lock=*/true);
  const uint64_t hello = Lookup(*source_, kRootNodeId, "hello.txt");
  fuse_lk_in lock{};
  lock.owner = 7;
  lock.lk.type = F_WRLCK;
  lock.lk.end = INT64_MAX;
  ASSERT_EQ(Send(*source_, FUSE_SETLK, hello, Bytes(lock)).error, 0);
  EXPECT_THAT(source_->SaveState(), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(FsStateTest, PathsOutOfTheShareAreDroppedNeverOpened) {
  std::unique_ptr<FuseServer> destination = MakeServer();
  const std::string state = StateBuilder()
                                .Header()
                                .U32(6)
                                .Inode(2, 1, S_IFREG, "../outside.txt")
                                .Inode(3, 1, S_IFREG, "/etc/passwd")
                                .Inode(4, 1, S_IFREG, "outlink/secret")  // through a symlink
                                .Inode(5, 1, S_IFREG, "escape")  // the symlink is not a file
                                .Inode(6, 1, S_IFREG, "dir//inner.txt")
                                .Inode(7, 1, S_IFREG, "hello.txt")
                                .U32(3)
                                .Handle(1, 2, O_RDONLY, "../outside.txt")
                                .Handle(2, 4, O_RDONLY, "outlink/secret")
                                .Handle(3, 7, O_RDONLY, "hello.txt")
                                .str();
  ASSERT_OK(destination->LoadState(state));
  for (uint64_t node : {2, 3, 4, 5, 6}) EXPECT_EQ(GetAttr(*destination, node), ESTALE) << node;
  EXPECT_EQ(Read(*destination, 2, 1).error, EBADF);
  EXPECT_EQ(Read(*destination, 4, 2).error, EBADF);
  EXPECT_EQ(Read(*destination, 7, 3).body, "hello world");
  EXPECT_EQ(destination->inodes().size(), 2u);
}

TEST_F(FsStateTest, MalformedStatesAreRefusedWhole) {
  std::unique_ptr<FuseServer> destination = MakeServer();
  const uint64_t hello = Lookup(*destination, kRootNodeId, "hello.txt");
  auto refused = [&](const std::string& state) {
    return absl::IsInvalidArgument(destination->LoadState(state));
  };
  const std::string good = StateBuilder()
                               .Header()
                               .U32(1)
                               .Inode(2, 1, S_IFREG, "hello.txt")
                               .U32(1)
                               .Handle(1, 2, O_RDWR | O_APPEND, "hello.txt")
                               .str();
  // Every truncation of a good state, and one byte more.
  for (size_t n = 0; n < good.size(); ++n) EXPECT_TRUE(refused(good.substr(0, n))) << n;
  EXPECT_TRUE(refused(good + "x"));
  EXPECT_TRUE(refused("XXXX" + good.substr(4)));
  EXPECT_TRUE(refused(StateBuilder().Header(2).U32(0).U32(0).str()));        // unknown version
  EXPECT_TRUE(refused(StateBuilder().Header(1, 1, 1).U32(0).U32(0).str()));  // id counters
  EXPECT_TRUE(refused(StateBuilder().Header().U32(0xffffffff).str()));  // count beyond the bytes
  // Node ids: the root, zero, at or past the counter, twice; no lookups; a type that is none.
  for (uint64_t bad : {uint64_t{0}, uint64_t{1}, uint64_t{100}, ~uint64_t{0}}) {
    EXPECT_TRUE(refused(StateBuilder().Header().U32(1).Inode(bad, 1, S_IFREG, "a").U32(0).str()));
  }
  EXPECT_TRUE(refused(StateBuilder()
                          .Header()
                          .U32(2)
                          .Inode(2, 1, S_IFREG, "a")
                          .Inode(2, 1, S_IFREG, "b")
                          .U32(0)
                          .str()));
  EXPECT_TRUE(refused(StateBuilder().Header().U32(1).Inode(2, 0, S_IFREG, "a").U32(0).str()));
  EXPECT_TRUE(refused(StateBuilder().Header().U32(1).Inode(2, 1, 0777, "a").U32(0).str()));
  // Handles: zero, past the counter, twice; creating or truncating flags.
  for (uint64_t bad : {uint64_t{0}, uint64_t{100}}) {
    EXPECT_TRUE(refused(StateBuilder().Header().U32(0).U32(1).Handle(bad, 2, 0, "a").str()));
  }
  EXPECT_TRUE(refused(
      StateBuilder().Header().U32(0).U32(2).Handle(1, 2, 0, "a").Handle(1, 2, 0, "a").str()));
  for (int flags : {O_CREAT, O_TRUNC | O_RDWR, O_EXCL, O_PATH}) {
    EXPECT_TRUE(refused(StateBuilder().Header().U32(0).U32(1).Handle(1, 2, flags, "a").str()))
        << flags;
  }
  // Nothing refused touched the session there was.
  EXPECT_EQ(GetAttr(*destination, hello), 0);
  EXPECT_OK(destination->LoadState(good));
}

}  // namespace
}  // namespace vhost

// Credit accounting and the --vm syntax on their own, and the device on real rings in fake guest
// memory with host Unix sockets, driven by a test playing the guest.
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/base/unique_fd.h"
#include "common/testing/driver_ring.h"
#include "common/testing/fake_guest_memory.h"
#include "common/testing/status_matchers.h"
#include "common/testing/test_queue.h"
#include "gtest/gtest.h"
#include "vhost-user-vsock/credit.h"
#include "vhost-user-vsock/vm_spec.h"
#include "vhost-user-vsock/vsock_device.h"
#include "vhost-user-vsock/vsock_hub.h"

// Every allocation of this test binary goes through here, so a test can refuse large ones (and
// see that none was tried) instead of letting a hostile packet allocate gigabytes.
namespace {
std::atomic<size_t> g_allocation_limit{0};  // 0: none
std::atomic<size_t> g_refused_allocation{0};
std::atomic<size_t> g_allocations{0};

void* Allocate(size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  const size_t limit = g_allocation_limit.load(std::memory_order_relaxed);
  if (limit != 0 && n > limit) {
    g_refused_allocation.store(n, std::memory_order_relaxed);
    throw std::bad_alloc();
  }
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
void* AllocateNoThrow(size_t n) noexcept {
  try {
    return Allocate(n);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}
}  // namespace

void* operator new(size_t n) { return Allocate(n); }
void* operator new[](size_t n) { return Allocate(n); }
void* operator new(size_t n, const std::nothrow_t&) noexcept { return AllocateNoThrow(n); }
void* operator new[](size_t n, const std::nothrow_t&) noexcept { return AllocateNoThrow(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

namespace vhost {
namespace {

using ::vhost::testing::Buffer;
using ::vhost::testing::FakeGuestMemory;
using ::vhost::testing::TestQueue;

// While alive, allocations over `limit` bytes throw std::bad_alloc and are recorded.
class AllocationLimit {
 public:
  explicit AllocationLimit(size_t limit) {
    g_refused_allocation = 0;
    g_allocation_limit = limit;
  }
  ~AllocationLimit() { g_allocation_limit = 0; }
  size_t refused() const { return g_refused_allocation; }
};

TEST(CreditTest, GuestToHostBufferIsBoundedByWhatWeAdvertise) {
  Credit c;
  EXPECT_TRUE(c.Received(Credit::kBufAlloc));  // exactly the buffer: allowed
  EXPECT_EQ(c.Buffered(), Credit::kBufAlloc);
  EXPECT_FALSE(c.Received(1));  // one byte past it: an overrun, not counted
  c.Forwarded(Credit::kBufAlloc);
  EXPECT_EQ(c.Buffered(), 0u);
}

TEST(CreditTest, NoUpdateForALittleFreedWhileMoreIsBuffered) {
  Credit c;
  ASSERT_TRUE(c.Received(100000));
  c.Forwarded(1000);
  EXPECT_FALSE(c.UpdateDue());
}

TEST(CreditTest, UpdateDueWhenAQuarterIsFreed) {
  Credit c;
  ASSERT_TRUE(c.Received(Credit::kBufAlloc));
  c.Forwarded(Credit::kBufAlloc / 4);
  EXPECT_TRUE(c.UpdateDue());
  c.Reported();
  EXPECT_FALSE(c.UpdateDue());
  c.Forwarded(10);
  EXPECT_FALSE(c.UpdateDue());
  c.Forwarded(Credit::kBufAlloc - Credit::kBufAlloc / 4 - 10);  // all drained
  EXPECT_TRUE(c.UpdateDue());
}

TEST(CreditTest, AHugeClaimDoesNotWrapPastTheBuffer) {
  Credit c;
  ASSERT_TRUE(c.Received(100));
  // 100 + (2^32 - 51) is 49 modulo 2^32: a 32-bit check would let it through.
  EXPECT_FALSE(c.Received(0xffffffffu - 50));
  EXPECT_EQ(c.Buffered(), 100u);  // the refused bytes were not counted
  EXPECT_TRUE(c.Received(Credit::kBufAlloc - 100));
}

TEST(CreditTest, PeerCreditFollowsTheGuestsCounters) {
  Credit c;
  EXPECT_EQ(c.PeerCredit(), 0u);  // nothing advertised yet
  c.PeerAdvertised(4096, 0);
  EXPECT_EQ(c.PeerCredit(), 4096u);
  c.Sent(4000);
  EXPECT_EQ(c.PeerCredit(), 96u);
  c.Sent(96);
  EXPECT_EQ(c.PeerCredit(), 0u);
  c.PeerAdvertised(4096, 4096);
  EXPECT_EQ(c.PeerCredit(), 4096u);
  c.PeerAdvertised(1024, 0);  // the guest shrank its buffer below what is in flight
  EXPECT_EQ(c.PeerCredit(), 0u);
}

TEST(CreditTest, CountersWrapAround) {
  Credit c;
  c.PeerAdvertised(1000, 0);
  for (int i = 0; i < 5000; ++i) {  // past 2^32 bytes in total
    c.Sent(1000000);
    c.PeerAdvertised(1000, static_cast<uint32_t>(1000000ull * (i + 1)));
  }
  EXPECT_EQ(c.PeerCredit(), 1000u);
}

TEST(VmSpecTest, ParsesSeveralVms) {
  ASSERT_OK_AND_ASSIGN(std::vector<VmSpec> vms,
                       ParseVmSpecs("guest-cid=3,socket=/a,uds-path=/a.v,groups=x+y;"
                                    "guest-cid=4,socket=/b,uds-path=/b.v"));
  ASSERT_EQ(vms.size(), 2u);
  EXPECT_EQ(vms[0].guest_cid, 3u);
  EXPECT_EQ(vms[0].groups, (std::set<std::string>{"x", "y"}));
  EXPECT_EQ(vms[1].groups, (std::set<std::string>{"default"}));
  EXPECT_EQ(vms[1].uds_path, "/b.v");
}

TEST(VmSpecTest, RejectsBadSpecs) {
  for (const char* bad : {"", "guest-cid=2,socket=/a,uds-path=/a.v",
                          "guest-cid=3,socket=/a,uds-path=/a.v;guest-cid=3,socket=/b,uds-path=/b.v",
                          "guest-cid=3,socket=/a", "guest-cid=x,socket=/a,uds-path=/v",
                          "guest-cid=3,socket=/a,uds-path=/a", "guest-cid=3,colour=red"}) {
    EXPECT_FALSE(ParseVmSpecs(bad).ok()) << bad;
  }
}

// ---- the device

struct Packet {
  virtio_vsock_hdr header;
  std::string payload;
};

class VsockDeviceTest : public ::testing::Test {
 protected:
  static constexpr uint32_t kRingSize = 16384;
  static constexpr uint64_t kRamSize = 64 << 20;
  static constexpr uint64_t kGuestCid = 3;

  void SetUp() override {
    // Not $TEST_TMPDIR: the Unix sockets made here must fit sun_path (108 bytes).
    char dir[] = "/tmp/vsock_unitXXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    rx_ = MakeQueue(kVsockRxQueue);
    tx_ = MakeQueue(kVsockTxQueue);
    ASSERT_NE(rx_, nullptr);
    ASSERT_NE(tx_, nullptr);
    device_ = MakeDevice(kGuestCid, "v");
    ASSERT_NE(device_, nullptr);
    ASSERT_OK(rx_->Start(*device_));
    ASSERT_OK(tx_->Start(*device_));
  }
  void TearDown() override {
    if (device_ != nullptr) {
      rx_->Stop(*device_);
      tx_->Stop(*device_);
    }
    std::filesystem::remove_all(dir_);
  }
  // Serves the queues with another device (as a new front end would).
  void ReplaceDevice(std::unique_ptr<VsockDevice> device) {
    rx_->Stop(*device_);
    tx_->Stop(*device_);
    device_ = std::move(device);
    ASSERT_OK(rx_->Start(*device_));
    ASSERT_OK(tx_->Start(*device_));
  }

  std::unique_ptr<VsockDevice> MakeDevice(uint64_t cid, const std::string& uds,
                                          VsockHub* hub = nullptr) {
    VsockDevice::Options options;
    options.guest_cid = cid;
    options.uds_path = dir_ + "/" + uds;
    absl::StatusOr<std::unique_ptr<VsockDevice>> device = VsockDevice::Create(options, hub);
    EXPECT_OK(device);
    if (!device.ok()) return nullptr;
    EXPECT_OK((*device)->SetFeatures(Bit(kFeatureVersion1) | Bit(VIRTIO_VSOCK_F_SEQPACKET)));
    return *std::move(device);
  }
  std::unique_ptr<TestQueue> MakeQueue(int index) {
    TestQueue::Options options;
    options.index = index;
    options.size = kRingSize;
    auto queue = TestQueue::Create(&ram_, options);
    EXPECT_OK(queue);
    return queue.ok() ? *std::move(queue) : nullptr;
  }

  uint64_t Alloc(uint64_t size) { return ram_.Allocate(size, 64); }

  virtio_vsock_hdr Header(uint32_t guest_port, uint32_t host_port, uint16_t op,
                          uint16_t type = VIRTIO_VSOCK_TYPE_STREAM) {
    virtio_vsock_hdr h = MakeHeader(kGuestCid, guest_port, kHostCid, host_port, type, op);
    h.buf_alloc = Credit::kBufAlloc;
    return h;
  }
  // Places a packet on the tx ring (header and payload in one buffer); the device sees it at
  // the next ProcessQueue(tx).
  void Post(const virtio_vsock_hdr& h, const std::string& payload = "") {
    const uint64_t gpa = Alloc(kVsockHeaderSize + payload.size());
    std::memcpy(ram_.Host(gpa), &h, kVsockHeaderSize);
    if (!payload.empty()) {
      std::memcpy(ram_.Host(gpa + kVsockHeaderSize, payload.size()), payload.data(),
                  payload.size());
    }
    const uint32_t len = static_cast<uint32_t>(kVsockHeaderSize + payload.size());
    EXPECT_OK(tx_->Add({{gpa, len}}, {}));
  }
  void Send(const virtio_vsock_hdr& h, const std::string& payload = "") {
    Post(h, payload);
    tx_->Run(*device_);
    ReclaimTx();
  }
  void ReclaimTx() {
    for (;;) {
      auto used = tx_->driver().PollUsed();
      ASSERT_OK(used);
      if (!used->has_value()) return;
    }
  }
  // Hands the device rx buffers of `room` payload bytes (0: a header only).
  std::vector<uint16_t> PostRx(int count, uint32_t room = 4096) {
    std::vector<uint16_t> ids;
    for (int i = 0; i < count; ++i) {
      const uint32_t len = static_cast<uint32_t>(kVsockHeaderSize) + room;
      const uint64_t gpa = Alloc(len);
      auto id = rx_->driver().AddChain({}, {{gpa, len}});
      EXPECT_OK(id);
      if (!id.ok()) break;
      rx_gpa_[*id] = gpa;
      ids.push_back(*id);
    }
    rx_->driver().Publish();
    return ids;
  }
  // Lets the device fill rx buffers (a turn of the rx worker: the host sockets' events, then
  // ProcessQueue); returns the packets, in order (empty buffers skipped).
  std::vector<Packet> Receive() {
    rx_->Run(*device_);
    return ReadRx();
  }
  // The packets the device has placed in rx buffers so far.
  std::vector<Packet> ReadRx() {
    std::vector<Packet> out;
    for (;;) {
      auto used = rx_->driver().PollUsed();
      EXPECT_OK(used) << "the device corrupted the rx ring";
      if (!used.ok() || !used->has_value()) return out;
      used_rx_.push_back((*used)->id);
      if ((*used)->len == 0) continue;
      EXPECT_GE((*used)->len, kVsockHeaderSize);
      const uint8_t* buffer = ram_.Host(rx_gpa_[(*used)->id], (*used)->len);
      Packet p;
      std::memcpy(&p.header, buffer, kVsockHeaderSize);
      EXPECT_EQ(p.header.len, (*used)->len - kVsockHeaderSize);
      p.payload.assign(reinterpret_cast<const char*>(buffer) + kVsockHeaderSize, p.header.len);
      out.push_back(std::move(p));
    }
  }

  // A host program listening on UDS_<port>.
  UniqueFd ListenHost(uint32_t port, int type = SOCK_STREAM) {
    UniqueFd fd(socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::string path = absl::StrCat(dir_, "/v_", port);
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    EXPECT_EQ(bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(listen(fd.get(), 64), 0);
    return fd;
  }
  // The guest connects `guest_port` to host port `port`, where `listener` accepts.
  UniqueFd Connect(uint32_t guest_port, uint32_t port, int listener,
                   uint16_t type = VIRTIO_VSOCK_TYPE_STREAM) {
    PostRx(1);
    Send(Header(guest_port, port, VIRTIO_VSOCK_OP_REQUEST, type));
    UniqueFd host(accept4(listener, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    EXPECT_TRUE(host);
    std::vector<Packet> got = Receive();
    EXPECT_EQ(got.size(), 1u);
    if (!got.empty()) {
      EXPECT_EQ(got[0].header.op, VIRTIO_VSOCK_OP_RESPONSE);
    }
    return host;
  }
  // A packet whose payload descriptors all alias guest memory from gpa 0: a guest can claim a
  // packet of nearly 4 GiB without having the memory for it.
  void PostAliased(const virtio_vsock_hdr& h, uint64_t carried) {
    const uint64_t gpa = Alloc(kVsockHeaderSize);
    std::memcpy(ram_.Host(gpa), &h, kVsockHeaderSize);
    std::vector<Buffer> readable = {{gpa, static_cast<uint32_t>(kVsockHeaderSize)}};
    for (uint64_t left = carried; left > 0;) {
      const uint32_t len = static_cast<uint32_t>(std::min<uint64_t>(left, kRamSize));
      readable.push_back({0, len});
      left -= len;
    }
    EXPECT_OK(tx_->Add(readable, {}));
  }
  // Runs the tx queue refusing allocations over 1 MiB; fails the test if one was tried.
  void ProcessTxWithoutLargeAllocations(VsockDevice& device) {
    AllocationLimit limit(1 << 20);
    try {
      tx_->Run(device);
    } catch (const std::bad_alloc&) {
      ADD_FAILURE() << "the device tried to allocate " << limit.refused() << " bytes";
    }
  }

  FakeGuestMemory ram_{kRamSize};
  std::string dir_;
  std::unique_ptr<TestQueue> rx_, tx_;
  std::unique_ptr<VsockDevice> device_;
  std::map<uint16_t, uint64_t> rx_gpa_;
  std::vector<uint16_t> used_rx_;
};

std::string ReadAvailable(int fd) {
  std::string out;
  char buf[65536];
  for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;) out.append(buf, n);
  return out;
}

// A host program connected to the device's listener, having written `greeting`.
UniqueFd ConnectToListener(const std::string& path, const std::string& greeting) {
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  EXPECT_EQ(connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  EXPECT_EQ(write(fd.get(), greeting.data(), greeting.size()),
            static_cast<ssize_t>(greeting.size()));
  return fd;
}

TEST_F(VsockDeviceTest, PacketsUpTo64KiBPassAndLargerOnesResetTheConnection) {
  UniqueFd listener = ListenHost(1234);
  UniqueFd host = Connect(1000, 1234, listener.get());
  virtio_vsock_hdr rw = Header(1000, 1234, VIRTIO_VSOCK_OP_RW);
  rw.len = 65536;  // the most a driver sends in one packet (Linux's VIRTIO_VSOCK_MAX_PKT_BUF_SIZE)
  Send(rw, std::string(rw.len, 'a'));
  EXPECT_EQ(ReadAvailable(host.get()).size(), 65536u);
  // One byte more is within the 256 KiB of credit, but no driver sends such a packet.
  rw.len = 65537;
  Send(rw, std::string(rw.len, 'b'));
  PostRx(4);
  std::vector<Packet> got = Receive();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].header.op, VIRTIO_VSOCK_OP_RST);
  EXPECT_EQ(got[0].header.dst_port, 1000u);
  EXPECT_EQ(device_->connection_count(), 0u);
  EXPECT_EQ(ReadAvailable(host.get()), "") << "the oversized packet reached the host";
}

TEST_F(VsockDeviceTest, HugeClaimOnASeqpacketConnectionAllocatesNothing) {
  UniqueFd listener = ListenHost(88, SOCK_SEQPACKET);
  UniqueFd host = Connect(1000, 88, listener.get(), VIRTIO_VSOCK_TYPE_SEQPACKET);
  virtio_vsock_hdr rw = Header(1000, 88, VIRTIO_VSOCK_OP_RW, VIRTIO_VSOCK_TYPE_SEQPACKET);
  rw.len = 100;  // a message begun (no EOM): 100 bytes buffered
  Send(rw, std::string(100, 'm'));
  // 100 + (2^32 - 51) wraps to 49 bytes of a 32-bit credit check.
  rw.len = 0xffffffffu - 50;
  rw.flags = VIRTIO_VSOCK_SEQ_EOM;
  PostAliased(rw, 0xffffffffu - kVsockHeaderSize);
  ProcessTxWithoutLargeAllocations(*device_);
  ReclaimTx();
  PostRx(4);
  std::vector<Packet> got = Receive();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].header.op, VIRTIO_VSOCK_OP_RST);
  EXPECT_EQ(device_->connection_count(), 0u);
  char buf[16];
  EXPECT_EQ(recv(host.get(), buf, sizeof(buf), MSG_DONTWAIT), 0) << "a message reached the host";
}

TEST_F(VsockDeviceTest, HugeClaimForASiblingVmAllocatesNothing) {
  VsockHub hub;
  ReplaceDevice(MakeDevice(kGuestCid, "a", &hub));
  std::unique_ptr<VsockDevice> sibling = MakeDevice(4, "b", &hub);
  hub.Add(device_.get());
  hub.Add(sibling.get());
  virtio_vsock_hdr rw =
      MakeHeader(kGuestCid, 1000, 4, 7, VIRTIO_VSOCK_TYPE_STREAM, VIRTIO_VSOCK_OP_RW);
  rw.len = 0xffffffffu - 50;
  PostAliased(rw, 0xffffffffu - kVsockHeaderSize);
  ProcessTxWithoutLargeAllocations(*device_);
  ReclaimTx();
  EXPECT_EQ(sibling->queued_packet_count(), 0u);
  PostRx(4);
  std::vector<Packet> got = Receive();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].header.op, VIRTIO_VSOCK_OP_RST);
  EXPECT_EQ(uint64_t{got[0].header.src_cid}, 4u);
}

TEST_F(VsockDeviceTest, EmptySeqpacketMessagesForASlowHostAreBounded) {
  // Empty messages cost no credit, but each one the host program has not taken is held: a
  // guest sending them endlessly to a program that does not read is reset, not buffered for.
  UniqueFd listener = ListenHost(88, SOCK_SEQPACKET);
  UniqueFd host = Connect(1000, 88, listener.get(), VIRTIO_VSOCK_TYPE_SEQPACKET);
  virtio_vsock_hdr rw = Header(1000, 88, VIRTIO_VSOCK_OP_RW, VIRTIO_VSOCK_TYPE_SEQPACKET);
  rw.flags = VIRTIO_VSOCK_SEQ_EOM;
  for (size_t i = 0; i < 2 * VsockDevice::kMaxPendingMessages; ++i) Post(rw);
  tx_->Run(*device_);
  ReclaimTx();
  EXPECT_EQ(device_->connection_count(), 0u);
  PostRx(4);
  std::vector<Packet> got = Receive();
  ASSERT_FALSE(got.empty());
  for (const Packet& p : got) EXPECT_EQ(p.header.op, VIRTIO_VSOCK_OP_RST);  // then unknown
}

// At most kMaxConnections (4096) connections per VM, each one host socket: past them a guest's
// REQUEST is answered RST and the daemon opens nothing for it.
TEST_F(VsockDeviceTest, ConnectionsPastTheLimitAreRefused) {
  // Each connection is a descriptor of this process (the device runs in it).
  rlimit limit;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &limit), 0);
  limit.rlim_cur = std::max<rlim_t>(limit.rlim_cur, std::min<rlim_t>(limit.rlim_max, 8192));
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &limit), 0);
  ASSERT_GE(limit.rlim_cur, VsockDevice::kMaxConnections + 256);
  // 64 host programs that never accept: each backlog holds 64 connections.
  constexpr uint32_t kPorts = 64, kBase = 2000;
  std::vector<UniqueFd> listeners;
  for (uint32_t p = 0; p < kPorts; ++p) listeners.push_back(ListenHost(kBase + p));
  constexpr uint32_t kBatch = 256;  // replies stay under kMaxQueuedReplies
  for (uint32_t i = 0; i < VsockDevice::kMaxConnections; i += kBatch) {
    for (uint32_t j = i; j < i + kBatch; ++j) {
      Post(Header(10000 + j, kBase + j % kPorts, VIRTIO_VSOCK_OP_REQUEST));
    }
    tx_->Run(*device_);
    ReclaimTx();
    PostRx(kBatch, 0);
    std::vector<Packet> got = Receive();
    ASSERT_EQ(got.size(), kBatch);
    for (const Packet& p : got) ASSERT_EQ(p.header.op, VIRTIO_VSOCK_OP_RESPONSE);
  }
  EXPECT_EQ(device_->connection_count(), VsockDevice::kMaxConnections);
  UniqueFd spare = ListenHost(kBase + kPorts);
  PostRx(1, 0);
  Send(Header(9999, kBase + kPorts, VIRTIO_VSOCK_OP_REQUEST));
  std::vector<Packet> got = Receive();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].header.op, VIRTIO_VSOCK_OP_RST);
  EXPECT_EQ(device_->connection_count(), VsockDevice::kMaxConnections);
  EXPECT_FALSE(UniqueFd(accept4(spare.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK)))
      << "the daemon connected past its limit";
  // One connection reset frees a slot for the next.
  Send(Header(10000, kBase, VIRTIO_VSOCK_OP_RST));
  PostRx(1, 0);
  Send(Header(9999, kBase + kPorts, VIRTIO_VSOCK_OP_REQUEST));
  got = Receive();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].header.op, VIRTIO_VSOCK_OP_RESPONSE);
}

// Packets for a sibling VM that takes no rx buffers wait in its queue: at most
// kMaxQueuedPackets (4096) packets and kMaxQueuedBytes (8 MiB) of payload; past them the
// sender is answered RST.
TEST_F(VsockDeviceTest, PacketsWaitingForASiblingAreBounded) {
  VsockHub hub;
  ReplaceDevice(MakeDevice(kGuestCid, "a", &hub));
  std::unique_ptr<VsockDevice> sibling = MakeDevice(4, "b", &hub);
  hub.Add(device_.get());
  hub.Add(sibling.get());
  auto to_sibling = [&](uint32_t port, uint16_t op) {
    virtio_vsock_hdr h = MakeHeader(kGuestCid, port, 4, 7, VIRTIO_VSOCK_TYPE_STREAM, op);
    h.buf_alloc = Credit::kBufAlloc;
    return h;
  };
  auto rsts = [&] {
    PostRx(64, 0);
    size_t n = 0;
    for (const Packet& p : Receive()) n += p.header.op == VIRTIO_VSOCK_OP_RST;
    return n;
  };
  // By count: packets without payload.
  for (size_t i = 0; i < VsockDevice::kMaxQueuedPackets + 10; ++i) {
    Post(to_sibling(1000, VIRTIO_VSOCK_OP_CREDIT_UPDATE));
  }
  tx_->Run(*device_);
  ReclaimTx();
  EXPECT_EQ(sibling->queued_packet_count(), VsockDevice::kMaxQueuedPackets);
  EXPECT_EQ(rsts(), 10u);

  // By bytes: a fresh sibling, 64 KiB packets.
  std::unique_ptr<VsockDevice> second = MakeDevice(5, "c", &hub);
  hub.Add(second.get());
  const size_t fit = VsockDevice::kMaxQueuedBytes / kMaxPacketPayload;
  for (size_t i = 0; i < fit + 2; ++i) {
    virtio_vsock_hdr rw =
        MakeHeader(kGuestCid, 1001, 5, 7, VIRTIO_VSOCK_TYPE_STREAM, VIRTIO_VSOCK_OP_RW);
    rw.buf_alloc = Credit::kBufAlloc;
    rw.len = kMaxPacketPayload;
    Post(rw, std::string(kMaxPacketPayload, 'p'));
  }
  tx_->Run(*device_);
  ReclaimTx();
  EXPECT_EQ(second->queued_packet_count(), fit);
  EXPECT_EQ(rsts(), 2u);
}

TEST_F(VsockDeviceTest, ConnectResetChurnWithoutRxBuffersStaysBounded) {
  // The guest takes no rx buffers and connects and resets over and over: each connection
  // leaves a RESPONSE to deliver. The device must stop taking tx packets rather than queue
  // without bound, and resume once the guest takes its replies.
  UniqueFd listener = ListenHost(1234);
  constexpr int kBatch = 50;  // below the listener's backlog: every connect succeeds
  constexpr int kConnections = 6000;
  for (int i = 0; i < kConnections; i += kBatch) {
    for (int port = 10000 + i; port < 10000 + i + kBatch; ++port) {
      Post(Header(port, 1234, VIRTIO_VSOCK_OP_REQUEST));
      Post(Header(port, 1234, VIRTIO_VSOCK_OP_RST));
    }
    tx_->Run(*device_);
    ReclaimTx();
    while (UniqueFd(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC))) {
    }
  }
  EXPECT_LE(device_->queued_packet_count(), VsockDevice::kMaxQueuedReplies);
  // The guest takes its replies: every connection gets exactly one, in order, and the tx
  // queue resumes.
  int next = 10000;
  while (next < 10000 + kConnections) {
    PostRx(512, 0);
    std::vector<Packet> got = Receive();
    ASSERT_FALSE(got.empty()) << "no reply for port " << next;
    for (const Packet& p : got) {
      EXPECT_EQ(p.header.dst_port, static_cast<uint32_t>(next));
      EXPECT_TRUE(p.header.op == VIRTIO_VSOCK_OP_RESPONSE || p.header.op == VIRTIO_VSOCK_OP_RST);
      ++next;
    }
    tx_->Run(*device_);
    ReclaimTx();
    while (UniqueFd(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC))) {
    }
  }
  EXPECT_EQ(next, 10000 + kConnections);
  EXPECT_FALSE(tx_->queue().HasAvailable());
}

TEST_F(VsockDeviceTest, TxWorkerIsWokenWhenRepliesDrain) {
  for (uint32_t i = 0; i < VsockDevice::kMaxQueuedReplies + 10; ++i) {
    Post(Header(20000 + i, 4321, VIRTIO_VSOCK_OP_REQUEST));  // nobody listens: RST each
  }
  // Blocked: the worker neither spins on the chains left in the ring nor takes them.
  EXPECT_EQ(tx_->Run(*device_).kind(), QueueResult::Kind::kBlocked);
  EXPECT_TRUE(tx_->queue().HasAvailable()) << "the tx queue kept going with the replies stuck";
  EXPECT_EQ(tx_->context().in_flight(), 0u);
  EXPECT_FALSE(tx_->RunWhenReady(*device_, absl::ZeroDuration()).has_value());
  PostRx(16, 0);
  Receive();
  // The wake-up runs the tx queue's turn, which takes the rest.
  EXPECT_TRUE(tx_->RunWhenReady(*device_, absl::ZeroDuration()).has_value())
      << "the tx worker would not be woken";
  EXPECT_FALSE(tx_->queue().HasAvailable());
}

TEST_F(VsockDeviceTest, OneThreadServesTheQueuesAndARepliesWakeIsAFlag) {
  // The tx queue's reply wakes the rx queue on the thread serving both (this test's, as the
  // engine's one worker would): a flag the worker looks at, not an eventfd and a trip through
  // epoll per packet.
  EXPECT_TRUE(device_->Info().one_worker);
  UniqueFd listener = ListenHost(1234);
  PostRx(4);
  Send(Header(1000, 1234, VIRTIO_VSOCK_OP_REQUEST));
  EXPECT_TRUE(rx_->context().HasLocalWake());
  epoll_event event;
  EXPECT_EQ(epoll_wait(rx_->context().epoll_fd(), &event, 1, 0), 0)
      << "the reply's wake-up went through the eventfd";
  const std::vector<Packet> got = Receive();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].header.op, VIRTIO_VSOCK_OP_RESPONSE);
  EXPECT_FALSE(rx_->context().HasLocalWake());
}

TEST_F(VsockDeviceTest, ShortRxBufferInABatchKeepsTheRingConsistent) {
  UniqueFd listener = ListenHost(1234);
  UniqueFd host = Connect(1000, 1234, listener.get());
  // Two data buffers, one with no room for data, one more.
  const std::vector<uint16_t> a = PostRx(2);
  const std::vector<uint16_t> c = PostRx(1, 0);
  const std::vector<uint16_t> d = PostRx(1);
  used_rx_.clear();
  ASSERT_EQ(write(host.get(), "0123456789", 10), 10);
  std::string data;
  for (const Packet& p : Receive()) data += p.payload;
  const std::string more(5000, 'x');
  ASSERT_EQ(write(host.get(), more.data(), more.size()), 5000);
  for (const Packet& p : Receive()) data += p.payload;
  EXPECT_TRUE(data == "0123456789" + more) << data.size() << " bytes arrived";
  // Each buffer came back exactly once (PollUsed fails on a buffer returned twice).
  std::vector<uint16_t> all = {a[0], a[1], c[0], d[0]};
  std::sort(used_rx_.begin(), used_rx_.end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(used_rx_, all);
}

}  // namespace
}  // namespace vhost

namespace vhost {
namespace {

TEST_F(VsockDeviceTest, RepliesWakeTheRxWorker) {
  Send(Header(1000, 4321, VIRTIO_VSOCK_OP_REQUEST));  // nobody listens: a RST to deliver
  PostRx(1);
  // The tx worker queued it: the rx worker's turn comes without a kick.
  ASSERT_TRUE(rx_->RunWhenReady(*device_, absl::ZeroDuration()).has_value());
  std::vector<Packet> got = ReadRx();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].header.op, VIRTIO_VSOCK_OP_RST);
  EXPECT_EQ(got[0].header.dst_port, 1000u);
}

TEST_F(VsockDeviceTest, HostSocketsOfAStoppedRxQueueAreWatchedWhenItStarts) {
  UniqueFd listener = ListenHost(1234);
  UniqueFd host = Connect(1000, 1234, listener.get());
  // An rx buffer and nothing to put in it: it stays in the ring, not held by the device.
  PostRx(1);
  EXPECT_EQ(rx_->Run(*device_).kind(), QueueResult::Kind::kBlocked);
  EXPECT_EQ(rx_->context().in_flight(), 0u);
  rx_->Stop(*device_);
  EXPECT_TRUE(rx_->queue().HasAvailable());
  // While the rx queue does not serve: the guest connects again (the tx worker makes the host
  // socket), both host programs write, and a host program connects to the listener.
  Send(Header(1001, 1234, VIRTIO_VSOCK_OP_REQUEST));
  UniqueFd host2(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
  ASSERT_TRUE(host2);
  ASSERT_EQ(write(host.get(), "one", 3), 3);
  ASSERT_EQ(write(host2.get(), "two", 3), 3);
  UniqueFd program = ConnectToListener(dir_ + "/v", "CONNECT 77\n");
  ASSERT_OK(rx_->Start(*device_));
  PostRx(7);
  std::map<uint32_t, std::string> data;  // by guest port
  bool response = false, request = false;
  for (const Packet& p : Receive()) {
    if (p.header.op == VIRTIO_VSOCK_OP_RW) data[p.header.dst_port] += p.payload;
    response |= p.header.op == VIRTIO_VSOCK_OP_RESPONSE && p.header.dst_port == 1001;
    request |= p.header.op == VIRTIO_VSOCK_OP_REQUEST && p.header.dst_port == 77;
  }
  EXPECT_TRUE(response) << "the guest's second connection got no answer";
  EXPECT_TRUE(request) << "the host program's connection did not reach the guest";
  EXPECT_EQ(data[1000], "one");
  EXPECT_EQ(data[1001], "two") << "a socket made while the rx queue stopped is not watched";
}

}  // namespace
}  // namespace vhost

namespace vhost {
namespace {

TEST_F(VsockDeviceTest, HostDataToTheGuestAllocatesNothingPerBatch) {
  // The throughput path: one readv from the host socket into 16 rx buffers. After the first
  // batch (which sizes the device's scratch space), a batch allocates nothing.
  UniqueFd listener = ListenHost(1234);
  UniqueFd host = Connect(1000, 1234, listener.get());
  const std::string data(16 * 4096, 'h');
  for (int round = 0; round < 3; ++round) {
    PostRx(16);
    ASSERT_EQ(write(host.get(), data.data(), data.size()), static_cast<ssize_t>(data.size()));
    const size_t before = g_allocations.load();
    rx_->Run(*device_);
    const size_t allocated = g_allocations.load() - before;
    size_t received = 0;
    for (const Packet& p : ReadRx()) received += p.payload.size();
    EXPECT_EQ(received, data.size());
    if (round > 0) {
      EXPECT_EQ(allocated, 0u) << "round " << round;
    }
  }
}

}  // namespace
}  // namespace vhost

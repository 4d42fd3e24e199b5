// Fuzzes the device models with what a hostile guest controls: the input picks a device (gpio,
// i2c, vsock, fs) and becomes a stream of descriptor chains (which queue, readable bytes, writable
// size), interleaved with host-side events (GPIO edges); each device processes them on real
// split rings in fake guest memory. It must not crash, read or write outside the chains, or use
// more than a chain's writable size.
#include <linux/virtio_gpio.h>
#include <linux/virtio_i2c.h>
#include <linux/virtio_vsock.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "common/base/unique_fd.h"
#include "common/testing/driver_ring.h"
#include "common/testing/fake_guest_memory.h"
#include "common/vhost_user/message.h"
#include "glog/logging.h"
#include "tests/fuzz/fuzz_input.h"
#include "vhost-user-fs/fuse_server.h"
#include "vhost-user-gpio/gpio_device.h"
#include "vhost-user-gpio/simulated_chip.h"
#include "vhost-user-i2c/i2c_device.h"
#include "vhost-user-i2c/simulated_bus.h"
#include "vhost-user-vsock/vsock_device.h"

namespace vhost {
namespace {

constexpr uint32_t kQueueSize = 64;
constexpr uint64_t kBuffers = 0x40000;  // buffers from here on
constexpr uint64_t kMemory = 1 << 20;

struct Harness {
  testing::FakeGuestMemory ram{kMemory};
  std::vector<std::unique_ptr<testing::DriverRing>> drivers;
  std::vector<std::unique_ptr<Virtqueue>> queues;
  std::vector<std::vector<uint32_t>> writable_size;  // per queue, by descriptor id
  uint64_t next_buffer = kBuffers;
  UniqueFd call{eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};

  void Build(int count, uint64_t features) {
    for (int i = 0; i < count; ++i) {
      auto sizes = testing::ComputeRingSizes(testing::RingLayout::kSplit, kQueueSize);
      testing::DriverRing::Config config;
      config.size = kQueueSize;
      config.addresses = testing::LayoutRings(*sizes, 0x1000 + i * 0x4000);
      drivers.push_back(*testing::DriverRing::Create(&ram, config));
      VringLayout layout{kQueueSize, testing::FakeGuestMemory::Uva(config.addresses.desc),
                         testing::FakeGuestMemory::Uva(config.addresses.driver),
                         testing::FakeGuestMemory::Uva(config.addresses.device), 0};
      queues.push_back(*Virtqueue::Create(i, layout, features, ram.memory()));
      queues.back()->set_call_fd(call.get());
      writable_size.emplace_back(kQueueSize);
    }
  }

  uint64_t Allocate(uint32_t len) {
    if (next_buffer + len + 64 > kMemory) next_buffer = kBuffers;  // reuse: contents are junk
    const uint64_t gpa = next_buffer;
    next_buffer += (len + 63) & ~63u;
    return gpa;
  }

  // Adds one chain from the input to `q`: readable bytes (split over up to 3 descriptors) and
  // a writable size (split likewise).
  void AddChain(FuzzInput& in, int q) {
    std::vector<testing::Buffer> readable, writable;
    const int r_parts = in.Take<uint8_t>() % 4, w_parts = in.Take<uint8_t>() % 4;
    uint32_t total_writable = 0;
    for (int i = 0; i < r_parts; ++i) {
      const uint32_t len = in.Take<uint8_t>() % 80;
      const uint64_t gpa = Allocate(len);
      std::memset(ram.Host(gpa, len + 1), 0, len + 1);
      in.TakeBytes(ram.Host(gpa, len + 1), len);
      readable.push_back({gpa, len});
    }
    for (int i = 0; i < w_parts; ++i) {
      const uint32_t len = in.Take<uint16_t>() % 5000;
      writable.push_back({Allocate(len), len});
      total_writable += len;
    }
    if (readable.empty() && writable.empty()) return;
    absl::StatusOr<uint16_t> id = drivers[q]->AddChain(readable, writable);
    if (!id.ok()) return;  // ring full
    writable_size[q][*id] = total_writable;
    drivers[q]->Publish();
  }

  void Reap() {
    for (size_t q = 0; q < queues.size(); ++q) {
      for (;;) {
        auto used = drivers[q]->PollUsed();
        if (!used.ok()) std::abort();  // the device reported a chain it was never given
        if (!used->has_value()) break;
        if ((*used)->len > writable_size[q][(*used)->id]) std::abort();  // wrote past the chain
      }
    }
  }
};

void FuzzGpio(FuzzInput& in) {
  auto chip = std::make_unique<SimulatedChip>(8, *ParseSimulatedLines("a@in,b@out,c"));
  SimulatedChip* sim = chip.get();
  GpioDevice device(std::move(chip));
  const uint64_t features = Bit(kFeatureVersion1) | Bit(VIRTIO_GPIO_F_IRQ);
  (void)device.SetFeatures(features);
  Harness h;
  h.Build(2, features);
  std::unique_ptr<QueueContext> contexts[2];
  for (int i = 0; i < 2; ++i) {
    contexts[i] = *QueueContext::Create(h.queues[i].get(), nullptr);
    if (!device.QueueStarted(*contexts[i]).ok()) std::abort();
  }
  while (in.remaining() > 0) {
    const uint8_t op = in.Take<uint8_t>();
    if (op % 8 == 7) {
      sim->Drive(in.Take<uint8_t>() % 8, op & 8);
    } else {
      h.AddChain(in, op % 2);
    }
    device.ProcessQueue(*contexts[op % 2]);
    h.Reap();
  }
  for (auto& context : contexts) {
    device.QueueStopped(*context);
    if (context->in_flight() != 0) std::abort();  // a held buffer was not handed back
  }
  h.Reap();
  device.Reset();
}

void FuzzI2c(FuzzInput& in) {
  auto bus = std::make_shared<SimulatedBus>(std::vector<uint16_t>{0x50, 0x51});
  I2cDevice device(I2cBusMap{{0x50, bus}, {0x51, bus}, {0x52, bus}}, 512);
  const uint64_t features = Bit(kFeatureVersion1) | Bit(VIRTIO_I2C_F_ZERO_LENGTH_REQUEST);
  (void)device.SetFeatures(features);
  Harness h;
  h.Build(1, features);
  std::unique_ptr<QueueContext> context = *QueueContext::Create(h.queues[0].get(), nullptr);
  if (!device.QueueStarted(*context).ok()) std::abort();
  while (in.remaining() > 0) {
    const int chains = 1 + in.Take<uint8_t>() % 4;
    for (int i = 0; i < chains; ++i) h.AddChain(in, 0);
    device.ProcessQueue(*context);
    if (context->in_flight() != 0) std::abort();  // a transaction left unanswered
    h.Reap();
  }
  device.QueueStopped(*context);
}

void FuzzVsock(FuzzInput& in) {
  static const std::string dir = [] {
    char tmpl[] = "/tmp/vsock-fuzz-XXXXXX";
    return std::string(mkdtemp(tmpl));
  }();
  VsockDevice::Options options;
  options.guest_cid = 3;
  options.uds_path = dir + "/v.sock";
  absl::StatusOr<std::unique_ptr<VsockDevice>> device = VsockDevice::Create(options);
  if (!device.ok()) std::abort();
  const uint64_t features = Bit(kFeatureVersion1) | Bit(VIRTIO_VSOCK_F_SEQPACKET);
  (void)(*device)->SetFeatures(features);
  Harness h;
  h.Build(3, features);
  std::unique_ptr<QueueContext> contexts[3];
  for (int i = 0; i < 3; ++i) {
    contexts[i] = *QueueContext::Create(h.queues[i].get(), nullptr);
    if (!(*device)->QueueStarted(*contexts[i]).ok()) std::abort();
  }
  // A turn of queue q's worker: the host sockets' events (rx), then ProcessQueue.
  auto run = [&](int q) {
    QueueContext& context = *contexts[q];
    epoll_event events[16];
    const int n = epoll_wait(context.epoll_fd(), events, 16, 0);
    for (int i = 0; i < n; ++i) context.Dispatch(events[i].data.ptr, events[i].events);
    context.FreeUnwatched();
    (*device)->ProcessQueue(context);
    if (context.in_flight() != 0) std::abort();  // vsock holds no chain across calls
  };
  while (in.remaining() > 0) {
    const uint8_t op = in.Take<uint8_t>();
    const int q = op % 3;
    if (op & 0x80) {
      // A well-formed header from the guest with fuzzed fields: reaches deeper than raw bytes.
      virtio_vsock_hdr hdr{};
      in.TakeBytes(&hdr, sizeof(hdr));
      hdr.src_cid = 3;
      if (op & 0x40) hdr.dst_cid = 2;
      hdr.len = std::min<uint32_t>(hdr.len, 64);
      const uint64_t gpa = h.Allocate(sizeof(hdr) + hdr.len);
      std::memcpy(h.ram.Host(gpa, sizeof(hdr)), &hdr, sizeof(hdr));
      in.TakeBytes(h.ram.Host(gpa + sizeof(hdr), hdr.len + 1), hdr.len);
      if (h.drivers[1]->AddChain({{gpa, static_cast<uint32_t>(sizeof(hdr) + hdr.len)}}, {}).ok()) {
        h.drivers[1]->Publish();
      }
      run(1);
    } else {
      h.AddChain(in, q);
      run(q);
    }
    run(0);
    h.Reap();
  }
  for (auto& context : contexts) (*device)->QueueStopped(*context);
  (*device)->Reset();
}

// FUSE requests against a fresh directory: opcodes the client uses (and others), node ids and
// handles from earlier replies or made up, fuzzed arguments, any reply room.
void FuzzFs(FuzzInput& in) {
  static const std::string base = [] {
    char tmpl[] = "/tmp/fs-fuzz-XXXXXX";
    return std::string(mkdtemp(tmpl));
  }();
  const std::string dir = base + "/share";
  // A fresh share per input: what the previous one created is gone.
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir + "/sub");
  std::ofstream(dir + "/file") << "data\n";
  FsOptions options;
  options.shared_dir = dir;
  options.xattr = true;
  absl::StatusOr<std::unique_ptr<FuseServer>> server = FuseServer::Create(options);
  if (!server.ok()) std::abort();
  static const uint32_t kOpcodes[] = {
      FUSE_INIT,      FUSE_LOOKUP,      FUSE_FORGET,      FUSE_GETATTR, FUSE_SETATTR,
      FUSE_READLINK,  FUSE_SYMLINK,     FUSE_MKNOD,       FUSE_MKDIR,   FUSE_UNLINK,
      FUSE_RMDIR,     FUSE_RENAME,      FUSE_LINK,        FUSE_OPEN,    FUSE_READ,
      FUSE_WRITE,     FUSE_STATFS,      FUSE_RELEASE,     FUSE_FSYNC,   FUSE_SETXATTR,
      FUSE_GETXATTR,  FUSE_LISTXATTR,   FUSE_REMOVEXATTR, FUSE_FLUSH,   FUSE_OPENDIR,
      FUSE_READDIR,   FUSE_RELEASEDIR,  FUSE_ACCESS,      FUSE_CREATE,  FUSE_BATCH_FORGET,
      FUSE_FALLOCATE, FUSE_READDIRPLUS, FUSE_RENAME2,     FUSE_LSEEK,   FUSE_COPY_FILE_RANGE,
      FUSE_SYNCFS};
  std::vector<uint64_t> ids = {1};
  std::vector<char> out;
  while (in.remaining() > 0) {
    fuse_in_header h{};
    const uint8_t op = in.Take<uint8_t>();
    h.opcode = op < 200 ? kOpcodes[op % (sizeof(kOpcodes) / sizeof(kOpcodes[0]))] : op;
    const uint8_t node = in.Take<uint8_t>();
    h.nodeid = node < 128 ? ids[node % ids.size()] : node;
    h.unique = 1;
    std::string request(reinterpret_cast<char*>(&h), sizeof(h));
    std::string args(in.Take<uint8_t>() % 128, '\0');
    args.resize(in.TakeBytes(args.data(), args.size()));
    if (args.size() >= 8 && (op & 1)) {  // plausible handles and node ids inside the arguments
      uint64_t id = ids[in.Take<uint8_t>() % ids.size()];
      std::memcpy(args.data(), &id, 8);
    }
    request += args;
    const bool honest = in.Take<uint8_t>() & 1;
    reinterpret_cast<fuse_in_header*>(request.data())->len =
        honest ? request.size() : in.Take<uint32_t>();
    out.assign(in.Take<uint16_t>() % 9000, '\0');
    DescriptorChain chain;
    chain.readable.push_back({request.data(), request.size()});
    chain.readable_bytes = request.size();
    if (!out.empty()) {
      chain.writable.push_back({out.data(), out.size()});
      chain.writable_bytes = out.size();
    }
    const uint32_t written = (*server)->Handle(chain);
    if (written > out.size()) std::abort();
    // Node ids and handles from replies feed later requests.
    if (written >= sizeof(fuse_out_header) + 8) {
      uint64_t id;
      std::memcpy(&id, out.data() + sizeof(fuse_out_header), 8);
      if (id != 0 && id < (1u << 20) && ids.size() < 64) ids.push_back(id);
    }
  }
}

}  // namespace
}  // namespace vhost

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static bool quiet = [] {
    FLAGS_minloglevel = 3;  // the devices log every bad chain; expected here
    return true;
  }();
  (void)quiet;
  vhost::FuzzInput in(data, size);
  switch (in.Take<uint8_t>() % 4) {
    case 0:
      vhost::FuzzGpio(in);
      break;
    case 1:
      vhost::FuzzI2c(in);
      break;
    case 2:
      vhost::FuzzVsock(in);
      break;
    default:
      vhost::FuzzFs(in);
      break;
  }
  return 0;
}

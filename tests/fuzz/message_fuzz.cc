// Fuzzes the connection state machine: the input is a sequence of front-end messages (request,
// flags, payload) that go through validation and Backend::Handle, with real file descriptors
// attached where a request takes them (memfds for memory regions, eventfds for rings, a socket for
// the back-end channel), so that deep paths (queues starting over fuzzed ring addresses) run.
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/vhost_user/backend.h"
#include "common/vhost_user/message.h"
#include "glog/logging.h"
#include "tests/fuzz/fuzz_input.h"

namespace vhost {
namespace {

// Consumes whatever it is given, completing every chain with its readable bytes echoed back.
class EchoDevice : public VirtioDevice {
 public:
  DeviceInfo Info() const override {
    DeviceInfo info;
    info.num_queues = 2;
    info.max_queue_size = 256;
    info.features = Bit(kFeatureVersion1);
    info.config_size = 16;
    return info;
  }
  absl::Status ReadConfig(uint32_t offset, absl::Span<uint8_t> data) override {
    std::memset(data.data(), 0x5a, data.size());
    return absl::OkStatus();
  }
  QueueResult ProcessQueue(QueueContext& context) override {
    uint8_t scratch[64];
    while (absl::optional<ChainToken> token = context.Take()) {
      const DescriptorChain& chain = context.chain(*token);
      const size_t n = CopyFromSegments(chain.readable, 0, scratch, sizeof(scratch));
      context.Complete(*token, CopyToSegments(chain.writable, 0, scratch, n));
    }
    return QueueResult::Drained();
  }
};

UniqueFd MemFd(size_t size) {
  UniqueFd fd(memfd_create("fuzz-ram", MFD_CLOEXEC));
  if (fd && ftruncate(fd.get(), size) != 0) fd.Reset();
  return fd;
}

void AttachFds(Message& m) {
  switch (m.request()) {
    case FrontendRequest::kSetMemTable: {
      const uint32_t n = m.Read<MemoryTableHeader>().value_or(MemoryTableHeader{}).num_regions;
      for (uint32_t i = 0; i < n && i < kMaxMemTableRegions; ++i) m.fds.push_back(MemFd(1 << 20));
      break;
    }
    case FrontendRequest::kAddMemReg:
      m.fds.push_back(MemFd(1 << 20));
      break;
    case FrontendRequest::kSetVringKick:
    case FrontendRequest::kSetVringCall:
    case FrontendRequest::kSetVringErr:
      if (!(m.Read<uint64_t>().value_or(0) & kVringNoFdFlag)) {
        m.fds.emplace_back(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
      }
      break;
    case FrontendRequest::kSetBackendReqFd: {
      int pair[2];
      if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0) {
        close(pair[1]);  // nobody answers: notifications must fail cleanly
        m.fds.emplace_back(pair[0]);
      }
      break;
    }
    default:
      break;
  }
}

}  // namespace
}  // namespace vhost

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static bool quiet = [] {
    FLAGS_minloglevel = 3;  // the daemon's warnings about bad input are expected here
    return true;
  }();
  (void)quiet;
  using namespace vhost;
  EchoDevice device;
  Backend backend(&device, BackendOptions{});
  FuzzInput in(data, size);
  for (int i = 0; i < 64 && in.remaining() > 0; ++i) {
    // One value per statement: the order of reads must not depend on argument evaluation order.
    const uint32_t request = in.Take<uint8_t>() % 45;
    const uint32_t flags = in.Take<uint8_t>() & kFlagNeedReply;
    Message m = MakeRequest(request, flags);
    m.payload.resize(std::min<size_t>(in.Take<uint16_t>() % 600, kMaxPayloadSize));
    m.header.size = m.payload.size();
    in.TakeBytes(m.payload.data(), m.payload.size());
    AttachFds(m);
    if (ValidateFrontendMessage(m).ok()) (void)backend.Handle(m);
  }
  backend.Reset();
  return 0;
}

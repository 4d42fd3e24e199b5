// Fuzzes descriptor-chain walking: the input becomes the content of guest memory (descriptor
// table, rings, indirect tables) and the queue's layout and features; the device side pops,
// copies and pushes. Every segment handed out must lie inside guest memory.
#include <sys/eventfd.h>

#include <cstdlib>
#include <cstring>

#include "common/testing/fake_guest_memory.h"
#include "common/virtio/descriptor_chain.h"
#include "common/virtio/virtqueue.h"
#include "glog/logging.h"
#include "tests/fuzz/fuzz_input.h"

namespace vhost {
namespace {

constexpr uint64_t kRegionA = 0x0;
constexpr uint64_t kRegionB = 0x10000;  // adjacent to A: buffers may straddle the two
constexpr uint64_t kRegionSize = 0x10000;

bool Inside(const testing::FakeGuestMemory& ram, const iovec& v) {
  for (uint64_t base : {kRegionA, kRegionB}) {
    const uint8_t* start = ram.Host(base, kRegionSize);
    const uint8_t* p = static_cast<const uint8_t*>(v.iov_base);
    if (p >= start && p + v.iov_len <= start + kRegionSize) return true;
  }
  return false;
}

}  // namespace
}  // namespace vhost

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static bool quiet = [] {
    FLAGS_minloglevel = 3;  // broken-queue reports are expected here
    return true;
  }();
  (void)quiet;
  using namespace vhost;
  static testing::FakeGuestMemory ram({{kRegionA, kRegionSize}, {kRegionB, kRegionSize}});
  FuzzInput in(data, size);
  const uint8_t mode = in.Take<uint8_t>();
  uint64_t features = Bit(kFeatureVersion1);
  if (mode & 1) features |= Bit(kFeatureRingPacked);
  if (mode & 2) features |= Bit(kFeatureEventIdx);
  if (mode & 4) features |= Bit(kFeatureIndirectDesc);
  if (mode & 8) features |= Bit(kFeatureNotifyOnEmpty);
  VringLayout layout;
  layout.size = 1u << (in.Take<uint8_t>() % 9);          // 1..256
  if (mode & 16) layout.size += in.Take<uint8_t>() % 3;  // packed rings need no power of two
  // Rings somewhere in the first region (the rest of the input fills memory).
  layout.desc_addr = testing::FakeGuestMemory::Uva((in.Take<uint16_t>() & 0x7ff0));
  layout.avail_addr = testing::FakeGuestMemory::Uva((in.Take<uint16_t>() & 0xfffe));
  layout.used_addr = testing::FakeGuestMemory::Uva((in.Take<uint16_t>() & 0xfffc));
  layout.base = in.Take<uint32_t>();
  // Guest memory content: the remaining input, repeated over both regions.
  for (uint64_t base : {kRegionA, kRegionB}) {
    uint8_t* host = ram.Host(base, kRegionSize);
    std::memset(host, 0, kRegionSize);
    if (in.remaining() > 0) {
      const uint8_t* rest = data + (size - in.remaining());
      for (uint64_t off = 0; off < kRegionSize; off += in.remaining()) {
        std::memcpy(host + off, rest, std::min<uint64_t>(in.remaining(), kRegionSize - off));
      }
    }
  }
  absl::StatusOr<std::unique_ptr<Virtqueue>> queue =
      Virtqueue::Create(0, layout, features, ram.memory());
  if (!queue.ok()) return 0;
  static const int call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  (*queue)->set_call_fd(call);
  DescriptorChain chain;
  uint8_t scratch[256];
  for (int round = 0; round < 4; ++round) {
    for (int i = 0; i < 300 && (*queue)->Pop(&chain); ++i) {
      for (const IovecList* list : {&chain.readable, &chain.writable}) {
        for (const iovec& v : *list) {
          if (!Inside(ram, v)) std::abort();  // a segment outside guest memory: a real bug
        }
      }
      const size_t n = CopyFromSegments(chain.readable, 0, scratch, sizeof(scratch));
      const size_t written = CopyToSegments(chain.writable, 0, scratch, n);
      if (i % 7 == 3) {
        (*queue)->Unpop(chain);
        if (!(*queue)->Pop(&chain)) break;
      }
      (*queue)->Push(chain, written);
    }
    (*queue)->NotifyGuestIfNeeded();
    (*queue)->EnableNotifications();
  }
  (void)(*queue)->Base();
  return 0;
}

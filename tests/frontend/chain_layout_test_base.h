// A split ring in GuestRam for unit tests of the front end's request builders: add a request
// with a driver's Add* function, then read back the descriptor chain as a device would walk it.
#ifndef TESTS_FRONTEND_CHAIN_LAYOUT_TEST_BASE_H_
#define TESTS_FRONTEND_CHAIN_LAYOUT_TEST_BASE_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "common/testing/driver_ring.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "tests/frontend/guest_ram.h"

namespace vhost::frontend {

// A split ring's descriptor (virtio 1.2 §2.7.5).
struct Desc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
inline constexpr uint16_t kDescNext = 1;
inline constexpr uint16_t kDescWrite = 2;

class ChainLayoutTest : public ::testing::Test {
 protected:
  static constexpr uint16_t kRingSize = 16;

  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(ram_, GuestRam::Create(1 << 20));
    ASSERT_OK_AND_ASSIGN(const testing::RingSizes sizes,
                         testing::ComputeRingSizes(testing::RingLayout::kSplit, kRingSize));
    ASSERT_OK_AND_ASSIGN(const uint64_t base, ram_->Allocate(sizes.total_size + 16, 4096));
    testing::DriverRing::Config config;
    config.size = kRingSize;
    config.addresses = testing::LayoutRings(sizes, base);
    ASSERT_OK_AND_ASSIGN(ring_, testing::DriverRing::Create(ram_.get(), config));
  }

  // The chain starting at `head`, as the device would walk it.
  std::vector<Desc> Chain(uint16_t head) {
    auto* table = reinterpret_cast<Desc*>(
        ram_->HostAddress(ring_->config().addresses.desc, kRingSize * sizeof(Desc)));
    std::vector<Desc> chain;
    for (uint16_t i = head;; i = table[i].next) {
      chain.push_back(table[i]);
      if (!(table[i].flags & kDescNext) || chain.size() > kRingSize) break;
    }
    return chain;
  }

  std::unique_ptr<GuestRam> ram_;
  std::unique_ptr<testing::DriverRing> ring_;
};

}  // namespace vhost::frontend

#endif  // TESTS_FRONTEND_CHAIN_LAYOUT_TEST_BASE_H_

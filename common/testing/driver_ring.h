// The DRIVER side of a virtqueue, as a guest driver runs it (virtio 1.2 §2.7 split, §2.8 packed),
// over memory the caller provides. Used by unit tests of the device side, by the vhost-user front
// end in tests/frontend, by benchmarks and fuzzers.
//
// Normal operation (AddChain, Publish, PollUsed) allocates nothing and makes no syscall. The
// driver keeps its own bookkeeping in private memory and never trusts what the device writes: a
// used element it cannot account for is reported as an error, not followed.
//
// The raw interface (WriteDescriptor, WriteTable, PushAvailHead, SetAvailIdx, AddRawPackedChain,
// PollUsedRaw) bypasses that bookkeeping so hostile tests can build loops, out-of-range indices
// and addresses, nested or empty indirect tables and misordered chains. Do not mix raw writes and
// AddChain on the same descriptors.
//
// Not thread-safe.
#ifndef COMMON_TESTING_DRIVER_RING_H_
#define COMMON_TESTING_DRIVER_RING_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/optional.h"
#include "absl/types/span.h"

namespace vhost {
namespace testing {

// Where the driver finds guest memory.
class DriverMemory {
 public:
  virtual ~DriverMemory() = default;
  // Host pointer for guest-physical [gpa, gpa + len), or nullptr unless all of it is mapped
  // contiguously.
  virtual uint8_t* HostAddress(uint64_t gpa, size_t len) = 0;
};

enum class RingLayout { kSplit, kPacked };

constexpr uint32_t kMaxRingSize = 32768;

// Sizes and required alignments of the three areas of a ring.
struct RingSizes {
  uint64_t desc_size = 0;  // descriptor table (split) or descriptor ring (packed)
  uint64_t desc_align = 0;
  uint64_t driver_size = 0;  // split: available ring incl. used_event; packed: driver event area
  uint64_t driver_align = 0;
  uint64_t device_size = 0;  // split: used ring incl. avail_event; packed: device event area
  uint64_t device_align = 0;
  // All three laid out back to back by LayoutRings().
  uint64_t total_size = 0;
};

// Split rings need a power-of-two size; both layouts allow 1..32768.
absl::StatusOr<RingSizes> ComputeRingSizes(RingLayout layout, uint32_t queue_size);

// Guest-physical addresses of the three areas.
struct RingAddresses {
  uint64_t desc = 0;
  uint64_t driver = 0;  // vhost-user calls it "avail"
  uint64_t device = 0;  // vhost-user calls it "used"
};

// Lays the areas out back to back from `base` (rounded up to 16), each at its alignment. The
// areas end at most at base + 15 + sizes.total_size.
RingAddresses LayoutRings(const RingSizes& sizes, uint64_t base);

// A guest buffer.
struct Buffer {
  uint64_t gpa = 0;
  uint32_t len = 0;
};

// What the device reported: split, the head descriptor index; packed, the buffer id.
struct UsedElement {
  uint32_t id = 0;
  uint32_t len = 0;
};

// A descriptor written verbatim. Split rings use `next`, packed rings `id`. `flags` takes
// VRING_DESC_F_* (and, packed, VRING_PACKED_DESC_F_AVAIL/USED bits).
struct RawDescriptor {
  uint64_t addr = 0;
  uint32_t len = 0;
  uint16_t flags = 0;
  uint16_t next = 0;
  uint16_t id = 0;
};

// An event suppression structure of a packed ring.
struct PackedEvent {
  uint16_t off_wrap = 0;
  uint16_t flags = 0;
};

class DriverRing {
 public:
  struct Config {
    RingLayout layout = RingLayout::kSplit;
    uint32_t size = 256;
    RingAddresses addresses;
    bool event_idx = false;  // VIRTIO_RING_F_EVENT_IDX negotiated
    // Split only: the free-running avail and used indices start here (both are written to the
    // rings), so tests can cross the 16-bit wrap quickly. The device must be told the same base.
    uint16_t start_index = 0;
  };

  // Checks the layout (size, alignment, every area mapped) and initialises the rings: all areas
  // zeroed, split indices set to `start_index`, packed wrap counters at 1.
  static absl::StatusOr<std::unique_ptr<DriverRing>> Create(DriverMemory* memory,
                                                            const Config& config);

  // ---- Normal driver operation.

  // Places a chain: `readable` buffers then `writable` ones. With `indirect_table_gpa` the
  // buffers go into an indirect table written there (16 bytes per buffer) and the ring gets one
  // descriptor. Returns the id the device will report (split: head index; packed: buffer id).
  // ResourceExhausted when the ring lacks room; the chain reaches the device at Publish().
  absl::StatusOr<uint16_t> AddChain(absl::Span<const Buffer> readable,
                                    absl::Span<const Buffer> writable,
                                    absl::optional<uint64_t> indirect_table_gpa = absl::nullopt);

  // Makes every chain added since the last Publish visible to the device (release ordering), then
  // (after a full barrier) reads the device's event suppression. Returns whether the device wants
  // a kick for these chains. Kick whenever it returns true.
  bool Publish();

  // The next used element, or nullopt if there is none. An error if the device reports an id the
  // driver has not made available, or moves the used index beyond what is in flight; the ring is
  // then unusable.
  absl::StatusOr<absl::optional<UsedElement>> PollUsed();

  // Free descriptor slots, and chains made available and not yet used.
  uint32_t num_free() const { return num_free_; }
  uint32_t in_flight() const { return in_flight_; }

  // ---- Used-buffer notifications (interrupts).

  // Asks for a notification on the next used element (EVENT_IDX: used_event / driver event at
  // the next used position; otherwise clears NO_INTERRUPT / sets ENABLE), followed by a full
  // barrier. Poll once more afterwards: an element may have landed before the device saw it.
  void EnableInterrupts();
  // Sets NO_INTERRUPT (split; with EVENT_IDX also moves used_event behind) or DISABLE (packed).
  void DisableInterrupts();
  // Raw writes of the driver's suppression fields. Split: avail->flags and used_event.
  void SetAvailFlags(uint16_t flags);
  void SetUsedEvent(uint16_t used_event);
  // Packed: the driver event suppression structure.
  void SetDriverEvent(PackedEvent event);

  // What the device wrote. Split: used->flags, used->idx, avail_event. Packed: device event.
  uint16_t UsedFlags() const;
  uint16_t UsedIdx() const;
  uint16_t AvailEvent() const;
  PackedEvent DeviceEvent() const;

  // ---- Raw access for hostile tests (no checks against the ring's bookkeeping).

  // Writes descriptor `index` (< size) of the descriptor table / ring, flags last with release.
  void WriteDescriptor(uint32_t index, const RawDescriptor& desc);
  // Writes `table` at `gpa` in this ring's descriptor format (for indirect tables).
  absl::Status WriteTable(uint64_t gpa, absl::Span<const RawDescriptor> table);
  // Split: appends `head` to the available ring; it reaches the device at Publish(). Used
  // elements reporting ids the driver does not know are accepted once per pushed head.
  void PushAvailHead(uint16_t head);
  // Split: stores avail->idx verbatim (release) and makes it the driver's published index.
  void SetAvailIdx(uint16_t idx);
  // Packed: writes `descs` at the next ring slots (the current wrap counter's AVAIL/USED bits
  // ORed into flags unless `raw_flags`), the first one's flags at Publish(). Returns the slot of
  // the first one. The last descriptor's id is the one the device should report.
  uint16_t AddRawPackedChain(absl::Span<const RawDescriptor> descs, bool raw_flags = false);
  // The next used element without any bookkeeping check (split: advances the used position by
  // one; packed: by the descriptor count of a known id, else one).
  absl::optional<UsedElement> PollUsedRaw();

  // ---- State.

  // The base for SET_VRING_BASE when the device starts on this ring with nothing in flight.
  // Split: the next avail index. Packed: avail slot | avail wrap << 15 | (used slot | used wrap
  // << 15) << 16.
  uint32_t VringBase() const;
  const Config& config() const { return config_; }
  uint32_t size() const { return config_.size; }
  // Split: free-running indices. Packed: next slots and wrap counters.
  uint16_t avail_idx() const { return avail_idx_; }
  uint16_t used_idx() const { return used_idx_; }
  bool avail_wrap() const { return avail_wrap_; }
  bool used_wrap() const { return used_wrap_; }

 private:
  DriverRing(DriverMemory* memory, const Config& config);
  bool packed() const { return config_.layout == RingLayout::kPacked; }
  absl::StatusOr<uint16_t> AddSplitChain(absl::Span<const Buffer> readable,
                                         absl::Span<const Buffer> writable,
                                         absl::optional<uint64_t> indirect_table_gpa);
  absl::StatusOr<uint16_t> AddPackedChain(absl::Span<const Buffer> readable,
                                          absl::Span<const Buffer> writable,
                                          absl::optional<uint64_t> indirect_table_gpa);
  absl::Status WriteIndirect(uint64_t gpa, absl::Span<const Buffer> readable,
                             absl::Span<const Buffer> writable);
  // Packed: the AVAIL/USED bits marking a descriptor available at the current wrap counter.
  uint16_t PackedAvailBits() const;
  void AdvancePackedAvail();
  // Releases the bookkeeping of a chain the device reported; false if the id is unknown.
  bool Complete(uint32_t id, uint32_t* slots);
  bool SplitKickNeeded();
  bool PackedKickNeeded();
  absl::StatusOr<absl::optional<UsedElement>> PollSplit();
  absl::StatusOr<absl::optional<UsedElement>> PollPacked();

  DriverMemory* const memory_;
  const Config config_;
  uint8_t* desc_ = nullptr;
  uint8_t* driver_ = nullptr;
  uint8_t* device_ = nullptr;

  uint32_t num_free_ = 0;
  uint32_t in_flight_ = 0;
  uint32_t raw_outstanding_ = 0;  // raw chains the device may report

  // Split: avail_idx_ is the shadow (next entry to fill), published_idx_ what the device sees,
  // used_idx_ the next used entry to read. Free descriptors form a stack; next_ mirrors the
  // chains' links privately.
  // Packed: avail_idx_/used_idx_ are slots, with wrap counters; free buffer ids form a stack.
  uint16_t avail_idx_ = 0;
  uint16_t published_idx_ = 0;
  uint16_t used_idx_ = 0;
  bool avail_wrap_ = true;
  bool used_wrap_ = true;
  bool published_wrap_ = true;
  std::vector<uint16_t> free_stack_;
  uint32_t free_top_ = 0;
  std::vector<uint16_t> next_;
  std::vector<uint16_t> chain_count_;  // per head/id: descriptors it occupies (0: not in flight)
  std::vector<uint8_t> raw_;           // packed: id registered by AddRawPackedChain

  // Packed: heads whose flags Publish() writes.
  std::vector<uint16_t> pending_slot_;
  std::vector<uint16_t> pending_flags_;
  uint32_t num_pending_ = 0;
};

}  // namespace testing
}  // namespace vhost

#endif  // COMMON_TESTING_DRIVER_RING_H_

#include "common/device/inflight.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace vhost {
namespace {

// The region outlives this process: a later back end reads what a SIGKILL left. A kill lands
// between two instructions, and every store before it reaches memory, so program order is all
// that matters: the compiler must not move these stores across the ring updates they guard. No
// CPU fence (an mfence per store on the request path) is needed; nobody reads the region while
// this back end lives.
void Order() { std::atomic_signal_fence(std::memory_order_seq_cst); }

}  // namespace

size_t InflightQueueBytes(uint16_t queue_size) {
  static_assert(sizeof(InflightQueueHeaderPacked) >= sizeof(InflightQueueHeader) &&
                sizeof(InflightDescPacked) >= sizeof(InflightDescSplit));
  const size_t bytes =
      sizeof(InflightQueueHeaderPacked) + size_t{queue_size} * sizeof(InflightDescPacked);
  return (bytes + 63) / 64 * 64;
}

void InitInflightRegion(uint8_t* region, uint16_t num_queues, uint16_t queue_size) {
  for (uint16_t i = 0; i < num_queues; ++i) {
    auto* header =
        reinterpret_cast<InflightQueueHeader*>(region + i * InflightQueueBytes(queue_size));
    header->version = kInflightVersion;
    header->desc_num = queue_size;
  }
}

InflightQueue::InflightQueue(uint8_t* part, uint16_t desc_num) : part_(part), desc_num_(desc_num) {}

absl::StatusOr<std::vector<uint16_t>> InflightQueue::Recover(uint32_t ring_size,
                                                             uint16_t used_idx) {
  // Copy the header once: the front end may change it meanwhile.
  const InflightQueueHeader h = *header();
  if (h.version != kInflightVersion || h.desc_num != desc_num_ || ring_size > desc_num_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "inflight region version ", h.version, " for ", h.desc_num, " descriptors (expected ",
        kInflightVersion, ", ", desc_num_, ", a ring of ", ring_size, ")"));
  }
  // A part a packed ring used (the front end kept it across a renegotiation) holds nothing a
  // split ring can resume: it starts empty. The packed mark, in the first record, goes last.
  if (desc_num_ > 0 && reinterpret_cast<InflightQueueHeaderPacked*>(part_)->packed_state != 0) {
    uint8_t* records = part_ + sizeof(InflightQueueHeader);
    std::memset(records + sizeof(InflightDescSplit), 0,
                (size_t{desc_num_} - 1) * sizeof(InflightDescSplit));
    Order();
    std::memset(records, 0, sizeof(InflightDescSplit));
    header()->used_idx = used_idx;
    Order();
    counter_ = 0;
    return std::vector<uint16_t>();
  }
  if (h.used_idx != used_idx) {
    // Cut off between publishing a used entry and clearing its record: it is done.
    if (h.last_batch_head >= ring_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("inflight region: last head ", h.last_batch_head, " beyond the ring"));
    }
    desc(h.last_batch_head)->inflight = 0;
    header()->used_idx = used_idx;
  }
  std::vector<std::pair<uint64_t, uint16_t>> taken;
  counter_ = 0;
  for (uint32_t head = 0; head < desc_num_; ++head) {
    const InflightDescSplit d = *desc(head);
    if (d.inflight == 0) continue;
    if (d.inflight != 1 || head >= ring_size) {
      return absl::InvalidArgumentError(absl::StrCat("inflight region: head ", head, " marked ",
                                                     d.inflight, " in a ring of ", ring_size));
    }
    taken.emplace_back(d.counter, head);
    counter_ = std::max(counter_, d.counter);
  }
  std::sort(taken.begin(), taken.end());
  std::vector<uint16_t> heads;
  heads.reserve(taken.size());
  for (const auto& [counter, head] : taken) heads.push_back(head);
  return heads;
}

void InflightQueue::Taken(uint16_t head) {
  if (head >= desc_num_) return;
  desc(head)->counter = ++counter_;
  Order();
  desc(head)->inflight = 1;
  Order();
}

void InflightQueue::Untaken(uint16_t head) {
  if (head >= desc_num_) return;
  desc(head)->inflight = 0;
  Order();
}

void InflightQueue::Completing(uint16_t head) {
  header()->last_batch_head = head;
  Order();
}

void InflightQueue::Completed(uint16_t head, uint16_t used_idx) {
  Order();
  if (head < desc_num_) desc(head)->inflight = 0;
  Order();
  header()->used_idx = used_idx;
  Order();
}

// ---- packed rings
//
// The spec's procedure, with the order of stores chosen so that a kill between any two leaves
// a part the next Recover reads right:
// - Taken writes the chain's records (free ones, ignored while not marked), marks the head in
//   flight, then moves free_head and old_free_head past the chain. Killed before the last
//   store, the head is still the free list's first record and Recover unmarks it: the chain,
//   which the device had not acted on, is taken again from the ring.
// - Completing puts the chain's records back at the front of the free list (free_head), then
//   moves used_wrap_counter and used_idx past the chain; the used element is written; then
//   Completed unmarks the head and copies the state into old_free_head, old_used_wrap_counter,
//   old_used_idx (in that order). Recover sees a completion in progress when (used_idx,
//   used_wrap_counter) differs from the old pair, and looks at the ring slot where its used
//   element goes: still the driver's descriptor there means the element was not written, and
//   the state goes back to the old_* fields; anything else means it was, and the state stays.
//   That slot is old_used_idx in the lap of the old wrap counter, which is derived from the
//   indices (a completion moves the used slot by 1 to ring-size slots) rather than read, so
//   that the half-written old pair Completed may leave still names the right slot.
// - The avail position is not stored: the ring slots between the used and avail positions are
//   exactly those of the chains in flight, so it is the used position plus their length,
//   consistent with the records at every instruction.

namespace {

uint32_t PackedBase(uint16_t avail, bool avail_wrap, uint16_t used, bool used_wrap) {
  return (avail | (avail_wrap ? 1u << 15 : 0)) | (used | (used_wrap ? 1u << 15 : 0)) << 16;
}

absl::Status Hostile(absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("packed inflight region: ", why));
}

}  // namespace

InflightQueuePacked::InflightQueuePacked(uint8_t* part, uint16_t desc_num)
    : part_(part), desc_num_(desc_num) {}

uint32_t InflightQueuePacked::Reset(uint32_t base) {
  // The front end's position, with nothing in flight: used where avail is (PackedRing reads a
  // base without a used half the same way).
  const uint16_t avail = base & 0x7fff;
  const bool avail_wrap = base & 0x8000;
  used_idx_ = (base >> 16) == 0 ? avail : (base >> 16) & 0x7fff;
  used_wrap_ = (base >> 16) == 0 ? avail_wrap : (base >> 31) != 0;
  InflightQueueHeaderPacked* h = header();
  h->packed_state = 0;
  Order();
  for (uint32_t i = 0; i < desc_num_; ++i) {
    desc(i)->inflight = 0;
    desc(i)->next = static_cast<uint16_t>(i + 1);
    next_[i] = static_cast<uint16_t>(i + 1);
  }
  free_head_ = 0;
  h->free_head = h->old_free_head = 0;
  h->used_idx = h->old_used_idx = used_idx_;
  h->used_wrap_counter = h->old_used_wrap_counter = used_wrap_;
  Order();
  h->packed_state = kInflightPackedState;
  Order();
  return PackedBase(avail, avail_wrap, used_idx_, used_wrap_);
}

absl::StatusOr<InflightQueuePacked::Recovered> InflightQueuePacked::Recover(
    uint32_t ring_size, uint32_t base, const SlotAvailable& available) {
  // Copy the part once: the front end may change it meanwhile.
  const InflightQueueHeaderPacked h = *header();
  if (h.version != kInflightVersion || h.desc_num != desc_num_ || ring_size == 0 ||
      ring_size > desc_num_) {
    return Hostile(absl::StrCat("version ", h.version, " for ", h.desc_num,
                                " descriptors (expected ", kInflightVersion, ", ", desc_num_,
                                ", a ring of ", ring_size, ")"));
  }
  ring_size_ = static_cast<uint16_t>(ring_size);
  next_.assign(desc_num_, desc_num_);
  last_.assign(desc_num_, 0);
  counter_ = 0;
  Recovered recovered;
  if (h.packed_state != kInflightPackedState) {
    recovered.base = Reset(base);
    return recovered;
  }
  if (h.used_idx >= ring_size || h.old_used_idx >= ring_size || h.used_wrap_counter > 1 ||
      h.old_used_wrap_counter > 1 || h.free_head > desc_num_ || h.old_free_head > desc_num_) {
    return Hostile(absl::StrCat("used slot ", h.used_idx, "/", h.old_used_idx, " wrap ",
                                h.used_wrap_counter, "/", h.old_used_wrap_counter, " free head ",
                                h.free_head, "/", h.old_free_head, " in a ring of ", ring_size));
  }
  std::vector<InflightDescPacked> d(desc_num_);
  std::memcpy(d.data(), desc(0), d.size() * sizeof(InflightDescPacked));

  // Finish or undo a completion cut off.
  bool commit = true;
  if (h.used_idx != h.old_used_idx || h.used_wrap_counter != h.old_used_wrap_counter) {
    const bool wrapped = h.used_idx <= h.old_used_idx;
    const bool old_wrap = wrapped ? !h.used_wrap_counter : h.used_wrap_counter;
    commit = !available(h.old_used_idx, old_wrap);
  } else {
    commit = false;  // nothing cut off after the used element; a take's records are void
  }
  const uint16_t free_head = commit ? h.free_head : h.old_free_head;
  used_idx_ = commit ? h.used_idx : h.old_used_idx;
  used_wrap_ = commit ? h.used_wrap_counter : h.old_used_wrap_counter;
  // The free list's first record may be the head of a chain whose take or completion was cut
  // off: not in flight.
  if (free_head < desc_num_) d[free_head].inflight = 0;

  // The chains in flight, each a run of records, and the free list must share no record and
  // cover them all.
  std::vector<uint8_t> seen(desc_num_, 0);
  uint32_t slots = 0;
  for (uint32_t head = 0; head < desc_num_; ++head) {
    if (d[head].inflight == 0) continue;
    const uint16_t num = d[head].num;
    if (d[head].inflight != 1 || num == 0 || num > ring_size - slots) {
      return Hostile(absl::StrCat("head ", head, " marked ", d[head].inflight, " for ", num,
                                  " descriptors, ", slots, " in flight already, ring of ",
                                  ring_size));
    }
    Chain chain;
    chain.record = static_cast<uint16_t>(head);
    uint32_t r = head;
    for (uint16_t i = 0; i < num; ++i) {
      if (i > 0) r = d[r].next;
      if (r >= desc_num_ || seen[r]) {
        return Hostile(absl::StrCat("chain at ", head, " runs into record ", r));
      }
      seen[r] = 1;
      vring_packed_desc desc;
      desc.addr = d[r].addr;
      desc.len = d[r].len;
      desc.id = d[r].id;
      desc.flags = d[r].flags;
      chain.descs.push_back(desc);
    }
    if (d[head].last != r) {
      return Hostile(absl::StrCat("chain at ", head, " ends at ", r, ", not ", d[head].last));
    }
    last_[head] = static_cast<uint16_t>(r);
    slots += num;
    recovered.chains.push_back(std::move(chain));
  }
  uint32_t free_records = 0;
  for (uint32_t r = free_head; r < desc_num_; r = d[r].next) {
    if (seen[r]) return Hostile(absl::StrCat("free list runs into record ", r));
    seen[r] = 1;
    ++free_records;
  }
  if (slots + free_records != desc_num_) {
    return Hostile(
        absl::StrCat(slots, " records in flight and ", free_records, " free of ", desc_num_));
  }
  std::stable_sort(
      recovered.chains.begin(), recovered.chains.end(),
      [&](const Chain& a, const Chain& b) { return d[a.record].counter < d[b.record].counter; });
  for (const Chain& chain : recovered.chains) {
    counter_ = std::max(counter_, d[chain.record].counter);
  }
  for (uint32_t r = 0; r < desc_num_; ++r) next_[r] = d[r].next;
  free_head_ = free_head;

  // The region as decided: current fields first when undoing (used_idx before its wrap, so
  // that a half-written pair still names the old slot), old_* ones when finishing.
  InflightQueueHeaderPacked* region = header();
  if (!commit) {
    region->free_head = free_head_;
    Order();
    region->used_idx = used_idx_;
    Order();
    region->used_wrap_counter = used_wrap_;
    Order();
  }
  region->old_free_head = free_head_;
  Order();
  region->old_used_wrap_counter = used_wrap_;
  Order();
  region->old_used_idx = used_idx_;
  Order();
  if (free_head_ < desc_num_) desc(free_head_)->inflight = 0;
  Order();

  uint32_t avail = used_idx_ + slots;
  bool avail_wrap = used_wrap_;
  if (avail >= ring_size) {
    avail -= ring_size;
    avail_wrap = !avail_wrap;
  }
  recovered.base = PackedBase(static_cast<uint16_t>(avail), avail_wrap, used_idx_, used_wrap_);
  return recovered;
}

absl::optional<uint16_t> InflightQueuePacked::Taken(absl::Span<const vring_packed_desc> descs) {
  if (descs.empty() || descs.size() > ring_size_) return absl::nullopt;
  const uint16_t head = free_head_;
  uint16_t r = head;
  for (size_t i = 0; i < descs.size(); ++i) {
    if (i > 0) r = next_[r];
    if (r >= desc_num_) return absl::nullopt;
    InflightDescPacked* e = desc(r);
    e->id = descs[i].id;
    e->flags = descs[i].flags;
    e->len = descs[i].len;
    e->addr = descs[i].addr;
  }
  InflightDescPacked* h = desc(head);
  h->num = static_cast<uint16_t>(descs.size());
  h->last = r;
  h->counter = ++counter_;
  last_[head] = r;
  Order();
  h->inflight = 1;
  Order();
  free_head_ = next_[r];
  header()->free_head = free_head_;
  Order();
  header()->old_free_head = free_head_;
  Order();
  return head;
}

void InflightQueuePacked::Untaken(uint16_t record) {
  if (record >= desc_num_) return;
  // Its records still lead to the free list's rest: it is the list's first chain again.
  free_head_ = record;
  header()->free_head = record;
  Order();
  header()->old_free_head = record;
  Order();
  desc(record)->inflight = 0;
  Order();
}

void InflightQueuePacked::Completing(uint16_t record, uint16_t slots) {
  if (record >= desc_num_) return;
  const uint16_t last = last_[record];
  next_[last] = free_head_;
  desc(last)->next = free_head_;
  Order();
  free_head_ = record;
  header()->free_head = record;
  Order();
  used_idx_ = static_cast<uint16_t>(used_idx_ + slots);
  if (used_idx_ >= ring_size_) {
    used_idx_ = static_cast<uint16_t>(used_idx_ - ring_size_);
    used_wrap_ = !used_wrap_;
  }
  header()->used_wrap_counter = used_wrap_;
  Order();
  header()->used_idx = used_idx_;
  Order();
}

void InflightQueuePacked::Completed(uint16_t record) {
  Order();
  if (record < desc_num_) desc(record)->inflight = 0;
  Order();
  header()->old_free_head = free_head_;
  Order();
  header()->old_used_wrap_counter = used_wrap_;
  Order();
  header()->old_used_idx = used_idx_;
  Order();
}

}  // namespace vhost

#include "common/virtio/guest_memory.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>

#include "absl/strings/str_cat.h"

namespace vhost {
namespace {

bool RangesOverlap(uint64_t a, uint64_t a_len, uint64_t b, uint64_t b_len) {
  return a < b + b_len && b < a + a_len;
}

std::string Describe(const GuestRegion& r) {
  return absl::StrCat("[gpa 0x", absl::Hex(r.guest_phys_addr), " size 0x", absl::Hex(r.size),
                      " uva 0x", absl::Hex(r.user_addr), "]");
}

// The SIGBUS handler's view of the guest mappings: a fixed table of lock-free atomics, as a
// signal handler may neither lock nor allocate. A slot is claimed by setting `begin` and then
// `end`, and released in the opposite order, so the handler never sees a range that is not
// mapped. Several back ends in one process (--socket-count, --vm) share the table.
struct FaultSlot {
  std::atomic<uintptr_t> begin{0};
  std::atomic<uintptr_t> end{0};
  std::atomic<bool> faulted{false};
};
constexpr int kFaultSlots = 4096;
FaultSlot g_fault_slots[kFaultSlots];
std::atomic<uint32_t> g_fault_count{0};
struct sigaction g_previous_sigbus;
uintptr_t g_page_size = 4096;

// Maps anonymous zero pages over [begin, begin + length). mmap is a plain system call (not on
// POSIX's async-signal-safe list, but it takes no user-space lock) and is allowed by the sandbox.
bool ReplaceWithZeros(uintptr_t begin, uintptr_t length) {
  return mmap(reinterpret_cast<void*>(begin), length, PROT_READ | PROT_WRITE,
              MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0) != MAP_FAILED;
}

// A fault inside a guest mapping means the front end shrank the file: the mapping is replaced
// from the faulting page to its end (the pages past the new end of the file) by zero pages, so the
// interrupted access is retried and completes. If that range cannot be split off (hugetlbfs), the
// whole mapping is replaced. The mapping is flagged and the count bumped so the queue using it
// breaks at its next batch. Any other SIGBUS goes to the previous disposition (by default the
// process dies as it would have without this handler).
void OnSigbus(int signal, siginfo_t* info, void* context) {
  const int saved_errno = errno;  // the interrupted code may be between a call and its errno check
  const uintptr_t address = reinterpret_cast<uintptr_t>(info->si_addr);
  for (FaultSlot& slot : g_fault_slots) {
    const uintptr_t begin = slot.begin.load(std::memory_order_acquire);
    const uintptr_t end = slot.end.load(std::memory_order_acquire);
    if (begin == 0 || address < begin || address >= end) continue;
    const uintptr_t page = address & ~(g_page_size - 1);
    if (ReplaceWithZeros(page, end - page) || ReplaceWithZeros(begin, end - begin)) {
      slot.faulted.store(true, std::memory_order_relaxed);
      g_fault_count.fetch_add(1, std::memory_order_release);
      errno = saved_errno;
      return;
    }
    break;
  }
  sigaction(SIGBUS, &g_previous_sigbus, nullptr);  // the access faults again and is fatal
  errno = saved_errno;
}

bool InstallSigbusHandler() {
  g_page_size = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  struct sigaction action = {};
  action.sa_sigaction = OnSigbus;
  action.sa_flags = SA_SIGINFO;
  sigemptyset(&action.sa_mask);
  return sigaction(SIGBUS, &action, &g_previous_sigbus) == 0;
}

// Returns the slot now guarding [base, base + length), or -1 if all are taken.
int RegisterMapping(uint8_t* base, size_t length) {
  static const bool installed = InstallSigbusHandler();
  if (!installed) return -1;
  const uintptr_t begin = reinterpret_cast<uintptr_t>(base);
  for (int i = 0; i < kFaultSlots; ++i) {
    uintptr_t expected = 0;
    if (g_fault_slots[i].begin.compare_exchange_strong(expected, begin,
                                                       std::memory_order_acq_rel)) {
      g_fault_slots[i].faulted.store(false, std::memory_order_relaxed);
      g_fault_slots[i].end.store(begin + length, std::memory_order_release);
      return i;
    }
  }
  return -1;
}

}  // namespace

uint32_t GuestMemoryFaultCount() { return g_fault_count.load(std::memory_order_relaxed); }

Mapping::~Mapping() {
  g_fault_slots[slot_].end.store(0, std::memory_order_release);
  g_fault_slots[slot_].begin.store(0, std::memory_order_release);
  munmap(base_, length_);
}

bool Mapping::faulted() const {
  return g_fault_slots[slot_].faulted.load(std::memory_order_acquire);
}

absl::StatusOr<GuestRegion> MapGuestRegion(const MemoryRegion& region, int fd) {
  const uint64_t end_gpa = region.guest_phys_addr + region.memory_size;
  const uint64_t end_uva = region.user_addr + region.memory_size;
  const uint64_t length = region.mmap_offset + region.memory_size;
  if (region.memory_size == 0 || end_gpa < region.guest_phys_addr || end_uva < region.user_addr ||
      length < region.mmap_offset) {
    return absl::InvalidArgumentError(
        absl::StrCat("memory region with size 0x", absl::Hex(region.memory_size), " at gpa 0x",
                     absl::Hex(region.guest_phys_addr), " offset 0x", absl::Hex(region.mmap_offset),
                     " is empty or wraps around"));
  }
  struct stat st;
  if (fstat(fd, &st) != 0) return absl::ErrnoToStatus(errno, "fstat(memory region fd)");
  if (S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) < length) {
    return absl::InvalidArgumentError(absl::StrCat("memory region needs 0x", absl::Hex(length),
                                                   " bytes of its file, which has 0x",
                                                   absl::Hex(st.st_size)));
  }
  // Map from offset 0 as the offset need not be page aligned (hugetlbfs needs aligned maps).
  void* base = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
  if (base == MAP_FAILED) return absl::ErrnoToStatus(errno, "mmap(memory region)");
  const int slot = RegisterMapping(static_cast<uint8_t*>(base), length);
  if (slot < 0) {
    munmap(base, length);
    return absl::ResourceExhaustedError("too many guest memory mappings in this process");
  }
  GuestRegion mapped;
  mapped.guest_phys_addr = region.guest_phys_addr;
  mapped.size = region.memory_size;
  mapped.user_addr = region.user_addr;
  mapped.mapping = std::make_shared<Mapping>(static_cast<uint8_t*>(base), length, slot);
  mapped.host = mapped.mapping->base() + region.mmap_offset;
  return mapped;
}

absl::StatusOr<std::shared_ptr<const GuestMemory>> GuestMemory::Create(
    std::vector<GuestRegion> regions) {
  std::sort(regions.begin(), regions.end(), [](const GuestRegion& a, const GuestRegion& b) {
    return a.guest_phys_addr < b.guest_phys_addr;
  });
  for (size_t i = 0; i < regions.size(); ++i) {
    if (regions[i].size == 0) return absl::InvalidArgumentError("empty memory region");
    for (size_t j = i + 1; j < regions.size(); ++j) {
      if (RangesOverlap(regions[i].guest_phys_addr, regions[i].size, regions[j].guest_phys_addr,
                        regions[j].size) ||
          RangesOverlap(regions[i].user_addr, regions[i].size, regions[j].user_addr,
                        regions[j].size)) {
        return absl::InvalidArgumentError(absl::StrCat("memory regions ", Describe(regions[i]),
                                                       " and ", Describe(regions[j]), " overlap"));
      }
    }
  }
  return std::shared_ptr<const GuestMemory>(new GuestMemory(std::move(regions)));
}

std::shared_ptr<const GuestMemory> GuestMemory::Empty() {
  return std::shared_ptr<const GuestMemory>(new GuestMemory({}));
}

bool GuestMemory::faulted() const {
  for (const GuestRegion& r : regions_) {
    if (r.mapping && r.mapping->faulted()) return true;
  }
  return false;
}

const GuestRegion* GuestMemory::FindGpa(uint64_t gpa) const {
  // Last region starting at or below gpa.
  auto it =
      std::upper_bound(regions_.begin(), regions_.end(), gpa,
                       [](uint64_t a, const GuestRegion& r) { return a < r.guest_phys_addr; });
  if (it == regions_.begin()) return nullptr;
  --it;
  return gpa - it->guest_phys_addr < it->size ? &*it : nullptr;
}

uint8_t* GuestMemory::TranslateGpa(uint64_t gpa, uint64_t len) const {
  const GuestRegion* r = FindGpa(gpa);
  if (r == nullptr || !r->ContainsGpa(gpa, len)) return nullptr;
  return r->host + (gpa - r->guest_phys_addr);
}

uint8_t* GuestMemory::TranslateUva(uint64_t uva, uint64_t len) const {
  for (const GuestRegion& r : regions_) {
    if (uva >= r.user_addr && uva - r.user_addr < r.size && len <= r.size - (uva - r.user_addr)) {
      return r.host + (uva - r.user_addr);
    }
  }
  return nullptr;
}

bool GuestMemory::HostToGpa(const void* host, uint64_t* gpa) const {
  const auto address = reinterpret_cast<uintptr_t>(host);
  for (const GuestRegion& r : regions_) {
    const auto begin = reinterpret_cast<uintptr_t>(r.host);
    if (address >= begin && address - begin < r.size) {
      *gpa = r.guest_phys_addr + (address - begin);
      return true;
    }
  }
  return false;
}

bool GuestMemory::AppendSegments(uint64_t gpa, uint64_t len, size_t max_segments,
                                 IovecList* out) const {
  while (len > 0) {
    const GuestRegion* r = FindGpa(gpa);
    if (r == nullptr || out->size() >= max_segments) return false;
    const uint64_t offset = gpa - r->guest_phys_addr;
    const uint64_t piece = std::min(len, r->size - offset);
    out->push_back({r->host + offset, static_cast<size_t>(piece)});
    gpa += piece;
    len -= piece;
    if (len > 0 && gpa == 0) return false;  // wrapped around the address space
  }
  return true;
}

absl::StatusOr<std::shared_ptr<const GuestMemory>> GuestMemory::WithRegion(
    GuestRegion region) const {
  std::vector<GuestRegion> regions = regions_;
  regions.push_back(std::move(region));
  return Create(std::move(regions));
}

absl::StatusOr<std::shared_ptr<const GuestMemory>> GuestMemory::WithoutRegion(
    const MemoryRegion& region) const {
  std::vector<GuestRegion> regions = regions_;
  auto it = std::find_if(regions.begin(), regions.end(), [&](const GuestRegion& r) {
    return r.guest_phys_addr == region.guest_phys_addr && r.size == region.memory_size;
  });
  if (it == regions.end()) {
    return absl::NotFoundError(absl::StrCat("no memory region at gpa 0x",
                                            absl::Hex(region.guest_phys_addr), " of size 0x",
                                            absl::Hex(region.memory_size)));
  }
  regions.erase(it);
  return Create(std::move(regions));
}

}  // namespace vhost

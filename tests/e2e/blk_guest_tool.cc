// A checksummed block stream on a disk, for the crash-restart guest test
// (blk_crash_e2e_test.py): the guest writes or reads it while vhost-user-blk is killed and
// restarted under it. It runs on the host too (static), to fill an image and check one.
//
// Every 4 KiB block but the last holds a header {magic, block number, pass, crc32 of the
// payload} and a payload derived from (block, pass). The last block is the control block: the
// host writes "STOP" at its start to end a workload, which looks at it between passes.
//
//   blk_guest_tool write DEV        writes every block, pass 1, 2, ... until told to stop, then
//                                   fsyncs; prints "E2E-RESULT passes=N" (the last whole pass)
//   blk_guest_tool read DEV PASS    reads and checks every block, round after round, until told
//                                   to stop; prints "E2E-RESULT rounds=N"
//   blk_guest_tool verify DEV PASS  reads every block once; prints
//                                   "E2E-RESULT verify=blocks=N ok=N bad=N first_bad=B"
//   blk_guest_tool fill FILE PASS   writes every block of pass PASS and a clear control block
//   blk_guest_tool placed DEV OFFSET LO HI NODE SEED
//                                   for the memory-layout test (memory_e2e_test.py): I/O whose
//                                   buffers are pages at guest-physical [LO, HI), see Placed()
//
// Requests are kChunkBlocks blocks, kThreads of them in flight, O_DIRECT on block devices (so
// each goes to the device, not the page cache). Any I/O error is printed ("E2E-RESULT
// io_error=...") and makes the exit status 1; so does a bad block.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr size_t kBlock = 4096;
constexpr uint64_t kMagic = 0x6b6c626873617263;  // "crashblk"
constexpr size_t kChunkBlocks = 8;               // 32 KiB per request
constexpr int kThreads = 4;
constexpr char kStop[] = "STOP";

struct Header {
  uint64_t magic;
  uint64_t block;
  uint32_t pass;
  uint32_t crc;
};
constexpr size_t kPayload = kBlock - sizeof(Header);

// CRC-32 (IEEE, as zlib's), eight bytes a step (slicing-by-8): the guest runs under TCG.
uint32_t Crc32(const uint8_t* data, size_t length) {
  static const std::vector<std::array<uint32_t, 256>> tables = [] {
    std::vector<std::array<uint32_t, 256>> t(8);
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
      t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; ++i) {
      for (int k = 1; k < 8; ++k) t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xff];
    }
    return t;
  }();
  uint32_t crc = 0xffffffffu;
  for (; length >= 8; data += 8, length -= 8) {
    uint32_t lo, hi;
    std::memcpy(&lo, data, 4);
    std::memcpy(&hi, data + 4, 4);
    lo ^= crc;
    crc = tables[7][lo & 0xff] ^ tables[6][(lo >> 8) & 0xff] ^ tables[5][(lo >> 16) & 0xff] ^
          tables[4][lo >> 24] ^ tables[3][hi & 0xff] ^ tables[2][(hi >> 8) & 0xff] ^
          tables[1][(hi >> 16) & 0xff] ^ tables[0][hi >> 24];
  }
  for (; length > 0; ++data, --length) crc = tables[0][(crc ^ *data) & 0xff] ^ (crc >> 8);
  return crc ^ 0xffffffffu;
}

// splitmix64 words from a seed.
void Stream(uint64_t seed, uint8_t* out) {
  for (size_t i = 0; i < kPayload; i += 8) {
    uint64_t z = (seed += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    std::memcpy(out + i, &z, std::min<size_t>(8, kPayload - i));
  }
}

// The payload of (block, pass) is B(block) xor P(pass), two splitmix streams. A CRC is affine
// over xor: for equal lengths crc(a ^ b) = crc(a) ^ crc(b) ^ crc(zeroes), so each block's CRC
// comes from ones computed once per block and once per pass, and the guest, slow under TCG,
// spends its time on I/O rather than on checksums. `verify` computes every CRC in full, which
// checks this too.
class Content {
 public:
  explicit Content(uint64_t blocks) : blocks_(blocks * kPayload), block_crcs_(blocks) {
    for (uint64_t b = 0; b < blocks; ++b) {
      Stream(b << 1, &blocks_[b * kPayload]);
      block_crcs_[b] = Crc32(&blocks_[b * kPayload], kPayload);
    }
    std::vector<uint8_t> zeroes(kPayload, 0);
    zero_crc_ = Crc32(zeroes.data(), kPayload);
  }

  void Make(uint64_t block, uint32_t pass, uint8_t* out) {
    const PassStream& p = ForPass(pass);
    Header header{kMagic, block, pass, block_crcs_[block] ^ p.crc ^ zero_crc_};
    std::memcpy(out, &header, sizeof(header));
    const uint8_t* b = &blocks_[block * kPayload];
    static_assert(kPayload % 8 == 0, "the payload is xored in words");
    for (size_t i = 0; i < kPayload; i += 8) {
      uint64_t x, y;
      std::memcpy(&x, b + i, 8);
      std::memcpy(&y, p.bytes.data() + i, 8);
      x ^= y;
      std::memcpy(out + sizeof(Header) + i, &x, 8);
    }
  }

 private:
  struct PassStream {
    uint32_t pass = 0;
    uint32_t crc = 0;
    std::vector<uint8_t> bytes = std::vector<uint8_t>(kPayload);
  };

  const PassStream& ForPass(uint32_t pass) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& p : passes_) {
      if (p->pass == pass) return *p;
    }
    auto p = std::make_unique<PassStream>();
    p->pass = pass;
    Stream((static_cast<uint64_t>(pass) << 1) | 1, p->bytes.data());
    p->crc = Crc32(p->bytes.data(), kPayload);
    passes_.push_back(std::move(p));
    return *passes_.back();
  }

  std::vector<uint8_t> blocks_;
  std::vector<uint32_t> block_crcs_;
  uint32_t zero_crc_ = 0;
  std::mutex mu_;
  std::vector<std::unique_ptr<PassStream>> passes_;
};

// Empty if `data` is the block (block, pass) writes, else why not. Every field and the CRC are
// checked on their own (`verify`: a CRC computed in full) before the whole block is compared.
std::string CheckBlock(Content& content, uint64_t block, uint32_t pass, bool full_crc,
                       const uint8_t* data, uint8_t* expected) {
  Header header;
  std::memcpy(&header, data, sizeof(header));
  content.Make(block, pass, expected);
  if (std::memcmp(data, expected, kBlock) == 0 &&
      (!full_crc || Crc32(data + sizeof(Header), kPayload) == header.crc)) {
    return "";
  }
  if (header.magic != kMagic) return "no magic";
  if (header.block != block) return "block " + std::to_string(header.block);
  if (Crc32(data + sizeof(Header), kPayload) != header.crc) return "crc";
  if (header.pass != pass) return "pass " + std::to_string(header.pass);
  return "payload";
}

struct Disk {
  int fd = -1;
  uint64_t blocks = 0;  // data blocks; the control block follows them
};

bool OpenDisk(const char* path, Disk* disk) {
  struct stat st;
  if (stat(path, &st) != 0) {
    std::printf("E2E-RESULT io_error=stat %s: %s\n", path, std::strerror(errno));
    return false;
  }
  // O_DIRECT on a device, so every read reaches it; an image file is read through the page
  // cache, as the daemon sees it.
  disk->fd = open(path, O_RDWR | O_CLOEXEC | (S_ISBLK(st.st_mode) ? O_DIRECT : 0));
  const off_t size = disk->fd < 0 ? -1 : lseek(disk->fd, 0, SEEK_END);
  if (size < static_cast<off_t>(2 * kBlock)) {
    std::printf("E2E-RESULT io_error=open %s: %s\n", path,
                disk->fd < 0 ? std::strerror(errno) : "too small");
    return false;
  }
  disk->blocks = static_cast<uint64_t>(size) / kBlock - 1;
  return true;
}

uint8_t* AlignedBuffer(size_t bytes) {
  void* p = nullptr;
  if (posix_memalign(&p, kBlock, bytes) != 0) std::abort();
  return static_cast<uint8_t*>(p);
}

struct Totals {
  std::atomic<uint64_t> io_errors{0};
  std::atomic<uint64_t> ok{0};
  std::atomic<uint64_t> bad{0};
  std::mutex mu;
  uint64_t first_bad = UINT64_MAX;
  std::string first_bad_reason;

  void IoError(const char* op, uint64_t block, ssize_t n, int err) {
    if (io_errors.fetch_add(1) == 0) {
      std::printf("E2E-RESULT io_error=%s at block %llu: %s\n", op,
                  static_cast<unsigned long long>(block),
                  n < 0 ? std::strerror(err) : ("short: " + std::to_string(n)).c_str());
      std::fflush(stdout);
    }
  }
  void Bad(uint64_t block, const std::string& reason) {
    bad.fetch_add(1);
    std::lock_guard<std::mutex> lock(mu);
    if (block < first_bad) {
      first_bad = block;
      first_bad_reason = reason;
    }
  }
};

// One pass over the data blocks from kThreads threads, kChunkBlocks per request.
void RunPass(const Disk& disk, Content& content, bool write, uint32_t pass, bool full_crc,
             Totals* totals) {
  std::atomic<uint64_t> next{0};
  auto worker = [&] {
    const size_t bytes = kChunkBlocks * kBlock;
    uint8_t* buffer = AlignedBuffer(bytes);
    uint8_t* scratch = AlignedBuffer(kBlock);
    for (;;) {
      const uint64_t first = next.fetch_add(kChunkBlocks);
      if (first >= disk.blocks) break;
      const uint64_t count = std::min<uint64_t>(kChunkBlocks, disk.blocks - first);
      const size_t length = count * kBlock;
      const off_t offset = static_cast<off_t>(first * kBlock);
      if (write) {
        for (uint64_t i = 0; i < count; ++i) content.Make(first + i, pass, buffer + i * kBlock);
        const ssize_t n = pwrite(disk.fd, buffer, length, offset);
        if (n != static_cast<ssize_t>(length)) totals->IoError("write", first, n, errno);
        continue;
      }
      const ssize_t n = pread(disk.fd, buffer, length, offset);
      if (n != static_cast<ssize_t>(length)) {
        totals->IoError("read", first, n, errno);
        continue;
      }
      for (uint64_t i = 0; i < count; ++i) {
        const std::string why =
            CheckBlock(content, first + i, pass, full_crc, buffer + i * kBlock, scratch);
        if (why.empty()) {
          totals->ok.fetch_add(1);
        } else {
          totals->Bad(first + i, why);
        }
      }
    }
    std::free(buffer);
    std::free(scratch);
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) threads.emplace_back(worker);
  for (std::thread& t : threads) t.join();
}

bool StopRequested(const Disk& disk, Totals* totals) {
  uint8_t* buffer = AlignedBuffer(kBlock);
  const ssize_t n = pread(disk.fd, buffer, kBlock, static_cast<off_t>(disk.blocks * kBlock));
  if (n != static_cast<ssize_t>(kBlock)) totals->IoError("read control", disk.blocks, n, errno);
  const bool stop = std::memcmp(buffer, kStop, sizeof(kStop) - 1) == 0;
  std::free(buffer);
  return stop;
}

int Finish(const Totals& totals) {
  std::fflush(stdout);
  return totals.io_errors.load() == 0 && totals.bad.load() == 0 ? 0 : 1;
}

int Write(const Disk& disk) {
  Content content(disk.blocks);
  Totals totals;
  uint32_t pass = 0;
  do {
    RunPass(disk, content, /*write=*/true, ++pass, /*full_crc=*/false, &totals);
    std::printf("pass %u written\n", pass);
    std::fflush(stdout);
  } while (totals.io_errors.load() == 0 && !StopRequested(disk, &totals));
  if (fsync(disk.fd) != 0) totals.IoError("fsync", 0, -1, errno);
  std::printf("E2E-RESULT passes=%u\n", pass);
  return Finish(totals);
}

int Verify(const Disk& disk, uint32_t pass, bool until_stopped) {
  Content content(disk.blocks);
  Totals totals;
  uint64_t rounds = 0;
  do {
    RunPass(disk, content, /*write=*/false, pass, /*full_crc=*/!until_stopped, &totals);
    ++rounds;
  } while (until_stopped && totals.io_errors.load() == 0 && !StopRequested(disk, &totals));
  if (until_stopped)
    std::printf("E2E-RESULT rounds=%llu\n", static_cast<unsigned long long>(rounds));
  std::printf(
      "E2E-RESULT %s=blocks=%llu ok=%llu bad=%llu first_bad=%s\n",
      until_stopped ? "read" : "verify", static_cast<unsigned long long>(disk.blocks * rounds),
      static_cast<unsigned long long>(totals.ok.load()),
      static_cast<unsigned long long>(totals.bad.load()),
      totals.bad.load() == 0
          ? "none"
          : (std::to_string(totals.first_bad) + " (" + totals.first_bad_reason + ")").c_str());
  return Finish(totals);
}

int Fill(const Disk& disk, uint32_t pass) {
  Content content(disk.blocks);
  Totals totals;
  RunPass(disk, content, /*write=*/true, pass, /*full_crc=*/false, &totals);
  uint8_t* control = AlignedBuffer(kBlock);
  std::memset(control, 0, kBlock);
  const ssize_t n = pwrite(disk.fd, control, kBlock, static_cast<off_t>(disk.blocks * kBlock));
  if (n != static_cast<ssize_t>(kBlock)) totals.IoError("write control", disk.blocks, n, errno);
  std::free(control);
  if (fsync(disk.fd) != 0) totals.IoError("fsync", 0, -1, errno);
  return Finish(totals);
}

// ---- placed: I/O from pages at known guest-physical addresses.

constexpr size_t kPlacedPages = 256;    // 1 MiB of blocks
constexpr size_t kPagesPerRequest = 8;  // scattered pages, one descriptor each
constexpr size_t kAllocStep = 4 << 20;  // memory taken at a time while looking for pages

// Word `word` of block `block` of pattern `seed` (memory_e2e_test.py computes the same).
uint64_t PatternWord(uint64_t seed, uint64_t block, uint64_t word) {
  uint64_t z = seed * 0x9e3779b97f4a7c15ull + (block << 9 | word);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// The guest-physical address of the page at `page` (root sees frame numbers), or 0.
uint64_t PhysicalAddress(int pagemap, const void* page) {
  uint64_t entry = 0;
  const off_t at = static_cast<off_t>(reinterpret_cast<uintptr_t>(page) / kBlock * 8);
  if (pread(pagemap, &entry, 8, at) != 8 || !(entry >> 63)) return 0;
  return (entry & ((1ull << 55) - 1)) * kBlock;
}

uint64_t MemAvailable() {
  FILE* f = std::fopen("/proc/meminfo", "r");
  char line[128];
  unsigned long long kb = 0;
  while (f != nullptr && std::fgets(line, sizeof(line), f) != nullptr) {
    if (std::sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
  }
  if (f != nullptr) std::fclose(f);
  return kb << 10;
}

// Takes memory kAllocStep at a time (bound to NUMA node `node` unless it is negative), touched
// and locked, until kPlacedPages of its pages lie at guest-physical [lo, hi) or all but 64 MiB
// of the available memory is taken. Then writes kPlacedPages blocks of pattern `seed` at
// `offset` of the disk from those pages (O_DIRECT, so the device reads the pages themselves),
// zeroes them, reads the blocks back into them and compares; and looks the pages up again, to
// show they did not move. Prints
//   E2E-RESULT placed=pages=N first=0xA last=0xA ok=N bad=N moved=N
int Placed(const char* path, uint64_t offset, uint64_t lo, uint64_t hi, int node, uint64_t seed) {
  const int fd = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);
  const int pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0 || pagemap < 0) {
    std::printf("E2E-RESULT io_error=open: %s\n", std::strerror(errno));
    return 1;
  }
  const uint64_t budget = MemAvailable() > (64u << 20) ? MemAvailable() - (64u << 20) : 0;
  std::vector<uint8_t*> pages;
  std::vector<uint64_t> addresses;
  for (uint64_t taken = 0; pages.size() < kPlacedPages && taken + kAllocStep <= budget;
       taken += kAllocStep) {
    auto* chunk = static_cast<uint8_t*>(
        mmap(nullptr, kAllocStep, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (chunk == MAP_FAILED) break;
    if (node >= 0) {
      unsigned long mask = 1ul << node;
      if (syscall(SYS_mbind, chunk, kAllocStep, 2 /* MPOL_BIND */, &mask, 64, 0) != 0) {
        std::printf("E2E-RESULT io_error=mbind node %d: %s\n", node, std::strerror(errno));
        return 1;
      }
    }
    if (mlock(chunk, kAllocStep) != 0) std::memset(chunk, 1, kAllocStep);  // mlock faults in
    for (size_t i = 0; i < kAllocStep && pages.size() < kPlacedPages; i += kBlock) {
      const uint64_t address = PhysicalAddress(pagemap, chunk + i);
      if (address >= lo && address < hi) {
        pages.push_back(chunk + i);
        addresses.push_back(address);
      }
    }
  }
  if (pages.size() < kPlacedPages) {
    std::printf("E2E-RESULT io_error=only %zu pages at [0x%llx, 0x%llx)\n", pages.size(),
                static_cast<unsigned long long>(lo), static_cast<unsigned long long>(hi));
    return 1;
  }
  // Requests of kPagesPerRequest blocks; block b's buffer is taken from the page list in a
  // stride, so that neighbours in a request are not neighbours in memory (the driver cannot
  // merge them: each is a descriptor of its own).
  const size_t requests = kPlacedPages / kPagesPerRequest;
  auto page_of = [&](size_t block) {
    return (block % kPagesPerRequest) * requests + block / kPagesPerRequest;
  };
  auto fill = [&](size_t block) {
    auto* words = reinterpret_cast<uint64_t*>(pages[page_of(block)]);
    for (size_t w = 0; w < kBlock / 8; ++w) words[w] = PatternWord(seed, block, w);
  };
  auto io = [&](bool write) {
    for (size_t r = 0; r < requests; ++r) {
      iovec iov[kPagesPerRequest];
      for (size_t i = 0; i < kPagesPerRequest; ++i) {
        iov[i] = {pages[page_of(r * kPagesPerRequest + i)], kBlock};
      }
      const off_t at = static_cast<off_t>(offset + r * kPagesPerRequest * kBlock);
      const ssize_t n =
          write ? pwritev(fd, iov, kPagesPerRequest, at) : preadv(fd, iov, kPagesPerRequest, at);
      if (n != static_cast<ssize_t>(kPagesPerRequest * kBlock)) {
        std::printf("E2E-RESULT io_error=%s at 0x%llx: %s\n", write ? "write" : "read",
                    static_cast<unsigned long long>(at), n < 0 ? std::strerror(errno) : "short");
        return false;
      }
    }
    return true;
  };
  for (size_t b = 0; b < kPlacedPages; ++b) fill(b);
  if (!io(/*write=*/true) || fsync(fd) != 0) return 1;
  for (uint8_t* page : pages) std::memset(page, 0, kBlock);
  if (!io(/*write=*/false)) return 1;
  size_t ok = 0, moved = 0;
  std::vector<uint8_t> expected(kBlock);
  for (size_t b = 0; b < kPlacedPages; ++b) {
    auto* words = reinterpret_cast<uint64_t*>(expected.data());
    for (size_t w = 0; w < kBlock / 8; ++w) words[w] = PatternWord(seed, b, w);
    if (std::memcmp(pages[page_of(b)], expected.data(), kBlock) == 0) ++ok;
    if (PhysicalAddress(pagemap, pages[b]) != addresses[b]) ++moved;
  }
  const auto [first, last] = std::minmax_element(addresses.begin(), addresses.end());
  std::printf("E2E-RESULT placed=pages=%zu first=0x%llx last=0x%llx ok=%zu bad=%zu moved=%zu\n",
              kPlacedPages, static_cast<unsigned long long>(*first),
              static_cast<unsigned long long>(*last), ok, kPlacedPages - ok, moved);
  std::fflush(stdout);
  return ok == kPlacedPages && moved == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string op = argc >= 3 ? argv[1] : "";
  if (op == "placed" && argc == 8) {
    return Placed(argv[2], std::strtoull(argv[3], nullptr, 0), std::strtoull(argv[4], nullptr, 0),
                  std::strtoull(argv[5], nullptr, 0), std::atoi(argv[6]),
                  std::strtoull(argv[7], nullptr, 0));
  }
  const bool needs_pass = op == "read" || op == "verify" || op == "fill";
  if (!(op == "write" && argc == 3) && !(needs_pass && argc == 4)) {
    std::fprintf(stderr,
                 "usage: %s write DEV | read|verify DEV PASS | fill FILE PASS | "
                 "placed DEV OFFSET LO HI NODE SEED\n",
                 argv[0]);
    return 2;
  }
  Disk disk;
  if (!OpenDisk(argv[2], &disk)) return 1;
  if (op == "write") return Write(disk);
  const uint32_t pass = static_cast<uint32_t>(std::strtoul(argv[3], nullptr, 10));
  if (op == "fill") return Fill(disk, pass);
  return Verify(disk, pass, /*until_stopped=*/op == "read");
}

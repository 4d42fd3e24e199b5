// vhost-user-scsi driven over its socket by our front end's virtio-scsi driver: INQUIRY and its
// VPD pages, capacity, data round trips checked against the image files, FUA and SYNCHRONIZE
// CACHE reaching stable storage, UNMAP and WRITE SAME giving space back to the host, COMPARE AND
// WRITE, descriptor-format sense, several targets and LUNs, several queues with many requests in
// flight, read-only LUNs, task management (also with commands in flight), LUNs hot-added and
// removed, a grown LUN's event, bad input answered as the specs say, requests in flight across a
// SIGKILL.
//
// Sense data is checked byte for byte in the fixed format (SPC-5 4.4.3): byte 0 70h, byte 2 the
// sense key, byte 12 the ASC, byte 13 the ASCQ.
#include <fcntl.h>
#include <linux/virtio_scsi.h>
#include <scsi/scsi.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/device/inflight.h"
#include "common/testing/page_cache.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "tests/frontend/daemon_fixture.h"
#include "tests/frontend/scsi_driver.h"
#include "tests/integration/runfiles.h"

namespace vhost {
namespace {

// The LUN field of an event: Linux's virtio_scsi reads bytes 2-3 whole as the LUN (unlike a
// request's, where it sets flat addressing, 40h, for every LUN), so flat only from LUN 256.
std::array<uint8_t, 8> EventLunField(uint32_t target, uint32_t lun) {
  return {1,
          static_cast<uint8_t>(target),
          static_cast<uint8_t>(lun < 256 ? 0 : 0x40 | lun >> 8),
          static_cast<uint8_t>(lun & 0xff),
          0,
          0,
          0,
          0};
}

using frontend::AddScsiCommand;
using frontend::AddScsiControl;
using frontend::AllocateScsiCommand;
using frontend::AllocateScsiTmf;
using frontend::DaemonProcess;
using frontend::DaemonSession;
using frontend::FrontendQueue;
using frontend::kScsiFunctionComplete;
using frontend::ReadScsiResult;
using frontend::ScsiCommand;
using frontend::ScsiControl;
using frontend::ScsiDriver;
using frontend::ScsiResult;
using frontend::SetScsiCdb;
using testing::UsedElement;
using ::vhost::testing::UnsyncedPages;

constexpr absl::Duration kTimeout = absl::Seconds(10);
constexpr uint64_t kDiskBytes = 8 << 20;
constexpr uint32_t kBlock = 512;
constexpr uint64_t kBlocks = kDiskBytes / kBlock;
constexpr uint8_t kGood = 0x00;
constexpr uint8_t kCheckCondition = 0x02;

// ---- CDBs (SBC-4, SPC-5), big-endian fields.
using Cdb = std::vector<uint8_t>;
void Put(Cdb* cdb, size_t at, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i)
    (*cdb)[at + i] = static_cast<uint8_t>(value >> (8 * (bytes - 1 - i)));
}
uint64_t Get(const std::string& data, size_t at, int bytes) {
  uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) value = value << 8 | static_cast<uint8_t>(data[at + i]);
  return value;
}
Cdb TestUnitReady() { return Cdb(6, 0); }
Cdb Inquiry(bool evpd, uint8_t page, uint16_t allocation) {
  Cdb cdb = {INQUIRY, static_cast<uint8_t>(evpd ? 1 : 0), page, 0, 0, 0};
  Put(&cdb, 3, allocation, 2);
  return cdb;
}
Cdb ReadCapacity10() { return Cdb{READ_CAPACITY, 0, 0, 0, 0, 0, 0, 0, 0, 0}; }
Cdb ReadCapacity16(uint32_t allocation) {
  Cdb cdb(16, 0);
  cdb[0] = 0x9e;  // SERVICE ACTION IN(16)
  cdb[1] = 0x10;  // READ CAPACITY(16)
  Put(&cdb, 10, allocation, 4);
  return cdb;
}
// READ/WRITE(10): opcode, FUA (byte 1 bit 3), LBA (4 bytes), transfer length (2).
Cdb ReadWrite10(uint8_t opcode, uint32_t lba, uint16_t blocks, bool fua = false) {
  Cdb cdb(10, 0);
  cdb[0] = opcode;
  cdb[1] = fua ? 0x08 : 0;
  Put(&cdb, 2, lba, 4);
  Put(&cdb, 7, blocks, 2);
  return cdb;
}
Cdb ReadWrite16(uint8_t opcode, uint64_t lba, uint32_t blocks) {
  Cdb cdb(16, 0);
  cdb[0] = opcode;
  Put(&cdb, 2, lba, 8);
  Put(&cdb, 10, blocks, 4);
  return cdb;
}
constexpr uint8_t kRead16 = 0x88;
constexpr uint8_t kWrite16 = 0x8a;
Cdb SynchronizeCache10() { return Cdb{SYNCHRONIZE_CACHE, 0, 0, 0, 0, 0, 0, 0, 0, 0}; }
// UNMAP with its parameter list (SBC-4 5.37): 8-byte header, 16-byte descriptors.
Cdb Unmap(uint16_t list_length) {
  Cdb cdb(10, 0);
  cdb[0] = 0x42;
  Put(&cdb, 7, list_length, 2);
  return cdb;
}
std::vector<uint8_t> UnmapList(std::initializer_list<std::pair<uint64_t, uint32_t>> ranges) {
  Cdb list(8 + 16 * ranges.size(), 0);
  Put(&list, 0, list.size() - 2, 2);
  Put(&list, 2, 16 * ranges.size(), 2);
  size_t at = 8;
  for (const auto& [lba, blocks] : ranges) {
    Put(&list, at, lba, 8);
    Put(&list, at + 8, blocks, 4);
    at += 16;
  }
  return list;
}
// WRITE SAME(16): UNMAP is byte 1 bit 3, NDOB bit 0.
Cdb WriteSame16(uint64_t lba, uint32_t blocks, bool unmap, bool ndob = false) {
  Cdb cdb(16, 0);
  cdb[0] = 0x93;
  cdb[1] = (unmap ? 0x08 : 0) | (ndob ? 0x01 : 0);
  Put(&cdb, 2, lba, 8);
  Put(&cdb, 10, blocks, 4);
  return cdb;
}
Cdb ReportLuns(uint8_t select, uint32_t allocation) {
  Cdb cdb(12, 0);
  cdb[0] = 0xa0;  // REPORT LUNS
  cdb[2] = select;
  Put(&cdb, 6, allocation, 4);
  return cdb;
}

// The LUNs of a REPORT LUNS answer, decoded from SAM's peripheral (00b) or flat (01b) single-level
// addressing; well-known LUNs (C1h xx) as 0xc100 | xx.
std::vector<uint32_t> ReportedLuns(const std::string& data) {
  std::vector<uint32_t> luns;
  if (data.size() < 8) return luns;
  const size_t length = Get(data, 0, 4);
  for (size_t at = 8; at + 8 <= data.size() && at < 8 + length; at += 8) {
    const uint8_t b0 = data[at], b1 = data[at + 1];
    for (int i = 2; i < 8; ++i) EXPECT_EQ(data[at + i], 0) << "second-level LUN at " << at;
    switch (b0 >> 6) {
      case 0:
        EXPECT_EQ(b0, 0) << "bus identifier at " << at;
        luns.push_back(b1);
        break;
      case 1:
        luns.push_back((b0 & 0x3f) << 8 | b1);
        break;
      default:
        luns.push_back(b0 << 8 | b1);
    }
  }
  return luns;
}

::testing::AssertionResult Good(const ScsiResult& r) {
  if (r.response == VIRTIO_SCSI_S_OK && r.status == kGood && r.sense.empty()) {
    return ::testing::AssertionSuccess();
  }
  auto failure = ::testing::AssertionFailure()
                 << "response " << int{r.response} << " status " << int{r.status};
  if (r.sense.size() >= 14) {
    failure << " sense " << std::hex << int{r.sense[2]} << "/" << int{r.sense[12]} << "/"
            << int{r.sense[13]};
  }
  return failure;
}

// CHECK CONDITION with fixed-format sense data naming `key`/`asc`/`ascq`.
::testing::AssertionResult CheckCondition(const ScsiResult& r, uint8_t key, uint8_t asc,
                                          uint8_t ascq) {
  if (r.response != VIRTIO_SCSI_S_OK || r.status != kCheckCondition) {
    return ::testing::AssertionFailure()
           << "response " << int{r.response} << " status " << int{r.status};
  }
  if (r.sense.size() < 18) {
    return ::testing::AssertionFailure() << r.sense.size() << " sense bytes";
  }
  const auto& s = r.sense;
  if ((s[0] & 0x7f) != 0x70 || s[2] != key || s[7] != s.size() - 8 || s[12] != asc ||
      s[13] != ascq) {
    return ::testing::AssertionFailure()
           << std::hex << "sense " << int{s[0]} << " key " << int{s[2]} << " additional length "
           << int{s[7]} << " asc " << int{s[12]} << " ascq " << int{s[13]} << ", wanted "
           << int{key} << "/" << int{asc} << "/" << int{ascq};
  }
  return ::testing::AssertionSuccess();
}

std::string Pattern(size_t len, uint8_t seed) {
  std::string s(len, '\0');
  for (size_t i = 0; i < len; ++i) s[i] = static_cast<char>(i * 7 + seed + i / 512);
  return s;
}
absl::Span<const uint8_t> Bytes(const std::string& s) {
  return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

class ScsiDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_OK_AND_ASSIGN(session_, DaemonSession::Create("scsi")); }

  // A sparse image of `bytes` in the session's directory; returns its path.
  std::string Image(const std::string& name, uint64_t bytes = kDiskBytes) {
    const std::string path = session_->File(name);
    const int fd = open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(ftruncate(fd, bytes), 0);
    close(fd);
    return path;
  }
  void StartDaemon(const std::vector<std::string>& extra) {
    std::vector<std::string> args = {"--socket-path=" + session_->socket()};
    args.insert(args.end(), extra.begin(), extra.end());
    ASSERT_OK(session_->Start(RunfilePath("vhost-user-scsi/vhost-user-scsi"), args));
  }
  // One LUN (target 0, LUN 0) on disk.img.
  void StartOneLun(const std::vector<std::string>& extra = {}) {
    image_ = Image("disk.img");
    std::vector<std::string> args = {"--lun=file=" + image_};
    args.insert(args.end(), extra.begin(), extra.end());
    StartDaemon(args);
  }
  void Open(uint32_t request_queues = 1, bool inflight = false) {
    ScsiDriver::Options options;
    options.request_queues = request_queues;
    options.inflight = inflight;
    options.queue_size = 256;
    driver_.reset();  // the daemon serves one front end at a time
    ASSERT_OK_AND_ASSIGN(driver_, ScsiDriver::Start(session_->socket(), options));
  }
  DaemonProcess* daemon() { return session_->daemon(); }

  ScsiResult Run(const Cdb& cdb, const std::string& out = "", uint32_t in = 0, uint8_t target = 0,
                 uint16_t lun = 0, size_t queue = 0) {
    absl::StatusOr<ScsiResult> r = driver_->Run(target, lun, cdb, Bytes(out), in, queue);
    EXPECT_OK(r);
    return r.ok() ? *r : ScsiResult{};
  }
  // Runs a command laid out by hand and waits for it.
  ScsiResult RunRaw(const ScsiCommand& c, size_t queue = 0) {
    absl::StatusOr<ScsiResult> r = driver_->Run(c, queue);
    EXPECT_OK(r);
    return r.ok() ? *r : ScsiResult{};
  }
  ScsiCommand Make(uint32_t out, uint32_t in) {
    absl::StatusOr<ScsiCommand> c = AllocateScsiCommand(driver_->ram(), out, in);
    EXPECT_OK(c);
    return *c;
  }

  std::string FileBytes(const std::string& path, uint64_t offset, size_t len) {
    std::string out(len, '\0');
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    EXPECT_EQ(pread(fd, out.data(), len, offset), static_cast<ssize_t>(len));
    close(fd);
    return out;
  }
  void WriteFile(const std::string& path, uint64_t offset, const std::string& data) {
    const int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_EQ(pwrite(fd, data.data(), data.size(), offset), static_cast<ssize_t>(data.size()));
    close(fd);
  }
  // Whether [offset, offset + len) of `path` is one hole (SEEK_HOLE finds it, SEEK_DATA finds no
  // data before its end).
  bool IsHole(const std::string& path, off_t offset, off_t len) {
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    const off_t hole = lseek(fd, offset, SEEK_HOLE);
    const off_t data = lseek(fd, offset, SEEK_DATA);
    close(fd);
    return hole == offset && (data < 0 || data >= offset + len);
  }
  uint64_t AllocatedBytes(const std::string& path) {
    struct stat st;
    EXPECT_EQ(stat(path.c_str(), &st), 0);
    return static_cast<uint64_t>(st.st_blocks) * 512;
  }
  int SyncFile(const std::string& path) {
    const int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
    const int rc = fd >= 0 ? fdatasync(fd) : -1;
    if (fd >= 0) close(fd);
    return rc;
  }
  // The daemon is alive and LUN 0 of target 0 still answers a READ.
  void ExpectServing() {
    EXPECT_TRUE(daemon()->IsAlive());
    EXPECT_TRUE(Good(Run(ReadWrite10(READ_10, 0, 1), "", kBlock)));
  }

  std::unique_ptr<DaemonSession> session_;
  std::string image_;
  std::unique_ptr<ScsiDriver> driver_;
};

TEST_F(ScsiDaemonTest, ConfigSpaceAndFeatures) {
  StartOneLun({"--num-queues=3"});
  Open(3);
  for (uint32_t bit : {VIRTIO_SCSI_F_HOTPLUG, VIRTIO_SCSI_F_CHANGE}) {
    EXPECT_TRUE(driver_->frontend()->has_feature(bit)) << bit;
  }
  ASSERT_OK_AND_ASSIGN(const virtio_scsi_config config, driver_->Config());
  EXPECT_EQ(config.num_queues, 3u);
  EXPECT_EQ(config.event_info_size, sizeof(virtio_scsi_event));
  EXPECT_EQ(config.sense_size, 96u);
  EXPECT_EQ(config.cdb_size, 32u);
  EXPECT_EQ(config.max_channel, 0);
  EXPECT_EQ(config.max_target, 255);
  EXPECT_EQ(config.max_lun, 16383u);
  EXPECT_GT(config.seg_max, 0u);
  EXPECT_GT(config.max_sectors, 0u);
  EXPECT_GT(config.cmd_per_lun, 0u);
  for (size_t q = 0; q < 3; ++q) EXPECT_TRUE(Good(Run(TestUnitReady(), "", 0, 0, 0, q))) << q;
}

TEST_F(ScsiDaemonTest, InquiryAndItsVpdPages) {
  StartOneLun({"--lun=file=" + Image("two.img") +
               ",lun=1,serial=SER-0042,wwn=0x5000c50015ea71ac,vendor=ACME,product=FASTDISK"});
  Open();
  // Standard data (SPC-5 6.7.2): a connected direct-access device, response data format 2, the
  // additional length covering what follows byte 4, identification in ASCII padded with spaces.
  ScsiResult standard = Run(Inquiry(false, 0, 96), "", 96, 0, 1);
  ASSERT_TRUE(Good(standard));
  const std::string& inq = standard.data_in;
  ASSERT_GE(inq.size(), 36u);
  EXPECT_EQ(inq[0], 0x00);  // peripheral qualifier 0, device type 0 (SBC)
  EXPECT_EQ(inq[3] & 0x0f, 2);
  EXPECT_EQ(inq.size(), static_cast<size_t>(static_cast<uint8_t>(inq[4])) + 5);
  EXPECT_EQ(standard.resid, 96 - inq.size());
  EXPECT_EQ(inq.substr(8, 8), "ACME    ");
  EXPECT_EQ(inq.substr(16, 16), "FASTDISK        ");
  // The allocation length truncates.
  ScsiResult truncated = Run(Inquiry(false, 0, 5), "", 96, 0, 1);
  ASSERT_TRUE(Good(truncated));
  EXPECT_EQ(truncated.data_in, inq.substr(0, 5));
  EXPECT_EQ(truncated.resid, 91u);

  auto vpd = [&](uint8_t page) {
    ScsiResult r = Run(Inquiry(true, page, 255), "", 255, 0, 1);
    EXPECT_TRUE(Good(r)) << std::hex << int{page};
    EXPECT_GE(r.data_in.size(), 4u);
    if (r.data_in.size() < 4) return std::string();
    EXPECT_EQ(r.data_in[0], 0x00);
    EXPECT_EQ(static_cast<uint8_t>(r.data_in[1]), page);
    EXPECT_EQ(Get(r.data_in, 2, 2) + 4, r.data_in.size()) << std::hex << int{page};
    return r.data_in;
  };
  // Supported pages, in ascending order (SPC-5 7.7.17).
  const std::string supported = vpd(0x00);
  const std::vector<uint8_t> pages(supported.begin() + 4, supported.end());
  EXPECT_TRUE(std::is_sorted(pages.begin(), pages.end()));
  for (uint8_t page : {0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2}) {
    EXPECT_NE(std::find(pages.begin(), pages.end(), page), pages.end()) << std::hex << int{page};
  }
  // Every page listed is served.
  for (uint8_t page : pages) vpd(page);

  EXPECT_EQ(vpd(0x80).substr(4), "SER-0042");

  // Device identification: the NAA designator given (binary, type 3, associated with the LUN).
  const std::string ids = vpd(0x83);
  bool naa_found = false;
  for (size_t at = 4; at + 4 <= ids.size();) {
    const size_t len = static_cast<uint8_t>(ids[at + 3]);
    ASSERT_LE(at + 4 + len, ids.size());
    if ((ids[at] & 0x0f) == 1 && (ids[at + 1] & 0x0f) == 3 && (ids[at + 1] & 0x30) == 0) {
      EXPECT_EQ(len, 8u);
      EXPECT_EQ(Get(ids, at + 4, 8), 0x5000c50015ea71acu);
      naa_found = true;
    }
    at += 4 + len;
  }
  EXPECT_TRUE(naa_found);

  // Block limits (SBC-4 6.6.4): page length 3Ch; UNMAP limits set since UNMAP is implemented.
  const std::string limits = vpd(0xb0);
  ASSERT_EQ(limits.size(), 64u);
  EXPECT_GT(Get(limits, 8, 4), 0u);   // MAXIMUM TRANSFER LENGTH
  EXPECT_GT(Get(limits, 20, 4), 0u);  // MAXIMUM UNMAP LBA COUNT
  EXPECT_GT(Get(limits, 24, 4), 0u);  // MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT
  // Block device characteristics (SBC-4 6.6.2): a non-rotating medium.
  const std::string characteristics = vpd(0xb1);
  ASSERT_EQ(characteristics.size(), 64u);
  EXPECT_EQ(Get(characteristics, 4, 2), 1u);
  // Logical block provisioning (SBC-4 6.6.6): UNMAP (LBPU) and WRITE SAME(16) with UNMAP (LBPWS),
  // thin provisioned.
  const std::string provisioning = vpd(0xb2);
  ASSERT_GE(provisioning.size(), 8u);
  EXPECT_TRUE(provisioning[5] & 0x80);
  EXPECT_TRUE(provisioning[5] & 0x40);
  EXPECT_EQ(provisioning[6] & 0x07, 2);

  // A page not implemented: INVALID FIELD IN CDB.
  EXPECT_TRUE(
      CheckCondition(Run(Inquiry(true, 0xc7, 255), "", 255, 0, 1), ILLEGAL_REQUEST, 0x24, 0x00));
  // LUN 0 has no serial: page 80h is not listed, and not served.
  const std::string lun0 = Run(Inquiry(true, 0, 255), "", 255).data_in;
  EXPECT_EQ(lun0.find('\x80', 4), std::string::npos);
  EXPECT_TRUE(CheckCondition(Run(Inquiry(true, 0x80, 255), "", 255), ILLEGAL_REQUEST, 0x24, 0));
}

TEST_F(ScsiDaemonTest, ReadCapacity) {
  StartOneLun({"--lun=file=" + Image("big.img", 64 << 20) + ",lun=1,block-size=4096"});
  Open();
  ScsiResult r16 = Run(ReadCapacity16(32), "", 32);
  ASSERT_TRUE(Good(r16));
  ASSERT_EQ(r16.data_in.size(), 32u);
  EXPECT_EQ(Get(r16.data_in, 0, 8), kBlocks - 1);  // RETURNED LOGICAL BLOCK ADDRESS: the last
  EXPECT_EQ(Get(r16.data_in, 8, 4), kBlock);
  EXPECT_TRUE(r16.data_in[14] & 0x80);  // LBPME: UNMAP gives blocks back
  ScsiResult r10 = Run(ReadCapacity10(), "", 8);
  ASSERT_TRUE(Good(r10));
  ASSERT_EQ(r10.data_in.size(), 8u);
  EXPECT_EQ(Get(r10.data_in, 0, 4), kBlocks - 1);
  EXPECT_EQ(Get(r10.data_in, 4, 4), kBlock);

  ScsiResult big = Run(ReadCapacity16(32), "", 32, 0, 1);
  ASSERT_TRUE(Good(big));
  EXPECT_EQ(Get(big.data_in, 0, 8), (64u << 20) / 4096 - 1);
  EXPECT_EQ(Get(big.data_in, 8, 4), 4096u);
  // 4 KiB blocks: a WRITE of one block moves 4096 bytes to 4096 * LBA.
  const std::string data = Pattern(4096, 9);
  ASSERT_TRUE(Good(Run(ReadWrite10(WRITE_10, 3, 1), data, 0, 0, 1)));
  EXPECT_EQ(FileBytes(session_->File("big.img"), 3 * 4096, 4096), data);
}

TEST_F(ScsiDaemonTest, WritesReachTheImageAndReadBack) {
  StartOneLun();
  Open();
  // WRITE(10) then READ(10): the host file holds the data at LBA * 512.
  const std::string data = Pattern(8 * kBlock, 1);
  ScsiResult w = Run(ReadWrite10(WRITE_10, 100, 8), data);
  ASSERT_TRUE(Good(w));
  EXPECT_EQ(w.resid, 0u);
  EXPECT_EQ(FileBytes(image_, 100 * kBlock, data.size()), data);
  ScsiResult r = Run(ReadWrite10(READ_10, 100, 8), "", data.size());
  ASSERT_TRUE(Good(r));
  EXPECT_EQ(r.resid, 0u);
  EXPECT_EQ(r.data_in, data);
  // What the host writes into the image is what the guest reads.
  const std::string host = Pattern(4 * kBlock, 77);
  WriteFile(image_, 2000 * kBlock, host);
  EXPECT_EQ(Run(ReadWrite10(READ_10, 2000, 4), "", host.size()).data_in, host);
  // READ/WRITE(16), to the last block.
  const std::string last = Pattern(kBlock, 3);
  ASSERT_TRUE(Good(Run(ReadWrite16(kWrite16, kBlocks - 1, 1), last)));
  EXPECT_EQ(FileBytes(image_, kDiskBytes - kBlock, kBlock), last);
  EXPECT_EQ(Run(ReadWrite16(kRead16, kBlocks - 1, 1), "", kBlock).data_in, last);
  // A data-in buffer larger than the transfer: the residual says how much was not filled.
  ScsiResult over = Run(ReadWrite10(READ_10, 100, 1), "", 4 * kBlock);
  ASSERT_TRUE(Good(over));
  EXPECT_EQ(over.resid, 3 * kBlock);
  EXPECT_EQ(over.data_in, data.substr(0, kBlock));
  // Through an indirect table too.
  ScsiCommand c = Make(0, 2 * kBlock);
  SetScsiCdb(&c, 0, 0, ReadWrite10(READ_10, 101, 2));
  ASSERT_OK_AND_ASSIGN(const uint16_t id,
                       AddScsiCommand(&driver_->request_queue(0)->ring(), c, /*indirect=*/true));
  ASSERT_OK(driver_->request_queue(0)->Submit());
  ASSERT_OK_AND_ASSIGN(const uint32_t used, driver_->WaitFor(driver_->request_queue(0), id));
  ScsiResult indirect = ReadScsiResult(c, used);
  ASSERT_TRUE(Good(indirect));
  EXPECT_EQ(indirect.data_in, data.substr(kBlock, 2 * kBlock));
}

// A write-back write may sit dirty in the host page cache; a FUA write completes only once on
// stable storage, and SYNCHRONIZE CACHE puts earlier writes there.
TEST_F(ScsiDaemonTest, FuaAndSynchronizeCacheReachStableStorage) {
  for (const char* engine : {"io_uring", "sync"}) {
    SCOPED_TRACE(engine);
    StartOneLun({std::string("--io-engine=") + engine});
    Open();
    ASSERT_TRUE(Good(Run(ReadWrite10(WRITE_10, 0, 8), std::string(4096, 'a'))));
    ASSERT_OK_AND_ASSIGN(const uint64_t dirty_write_back, UnsyncedPages(image_, 0, 4096));
    EXPECT_EQ(dirty_write_back, 1u) << "a write-back write was synced: nothing to tell apart";

    ASSERT_TRUE(Good(Run(ReadWrite10(WRITE_10, 64, 8, /*fua=*/true), std::string(4096, 'b'))));
    ASSERT_OK_AND_ASSIGN(const uint64_t dirty_fua, UnsyncedPages(image_, 64 * kBlock, 4096));
    EXPECT_EQ(dirty_fua, 0u) << "a FUA write completed before it was on stable storage";
    EXPECT_EQ(FileBytes(image_, 64 * kBlock, 4096), std::string(4096, 'b'));

    ASSERT_TRUE(Good(Run(SynchronizeCache10())));
    ASSERT_OK_AND_ASSIGN(const uint64_t dirty_synced, UnsyncedPages(image_, 0, 4096));
    EXPECT_EQ(dirty_synced, 0u) << "SYNCHRONIZE CACHE completed with the data in the page cache";
    ASSERT_OK(daemon()->Signal(SIGKILL));
    ASSERT_OK(daemon()->Wait(kTimeout).status());
    EXPECT_EQ(FileBytes(image_, 0, 4096), std::string(4096, 'a'));
    ASSERT_EQ(SyncFile(image_), 0);
  }
}

// UNMAP and WRITE SAME with UNMAP deallocate: the host file gets holes (and its blocks back), and
// the blocks read as zeroes.
TEST_F(ScsiDaemonTest, UnmapAndWriteSameMakeHolesInTheImage) {
  StartOneLun();
  Open();
  constexpr uint32_t kMiB = 1 << 20, kMiBBlocks = kMiB / kBlock;
  for (uint32_t mib = 1; mib <= 4; ++mib) {
    ASSERT_TRUE(
        Good(Run(ReadWrite10(WRITE_10, mib * kMiBBlocks, kMiBBlocks), Pattern(kMiB, mib), 0)));
  }
  ASSERT_TRUE(Good(Run(SynchronizeCache10())));
  const uint64_t allocated = AllocatedBytes(image_);
  EXPECT_GE(allocated, 4u * kMiB);
  ASSERT_FALSE(IsHole(image_, kMiB, kMiB));

  // UNMAP of MiB 1 and of the first half of MiB 2, in one list.
  const std::vector<uint8_t> list =
      UnmapList({{kMiBBlocks, kMiBBlocks}, {2 * kMiBBlocks, kMiBBlocks / 2}});
  ASSERT_TRUE(Good(Run(Unmap(list.size()), std::string(list.begin(), list.end()))));
  EXPECT_TRUE(IsHole(image_, kMiB, kMiB + kMiB / 2));
  EXPECT_EQ(FileBytes(image_, kMiB, kMiB), std::string(kMiB, '\0'));
  EXPECT_EQ(FileBytes(image_, 2 * kMiB + kMiB / 2, kMiB / 2), Pattern(kMiB, 2).substr(kMiB / 2));
  EXPECT_EQ(Run(ReadWrite10(READ_10, kMiBBlocks, 8), "", 4096).data_in, std::string(4096, '\0'));

  // WRITE SAME(16) with UNMAP and a zero block: MiB 3 deallocated. With NDOB (no data-out): MiB 4.
  ASSERT_TRUE(Good(Run(WriteSame16(3 * kMiBBlocks, kMiBBlocks, true), std::string(kBlock, '\0'))));
  EXPECT_TRUE(IsHole(image_, 3 * kMiB, kMiB));
  ASSERT_TRUE(Good(Run(WriteSame16(4 * kMiBBlocks, kMiBBlocks, true, /*ndob=*/true))));
  EXPECT_TRUE(IsHole(image_, 4 * kMiB, kMiB));
  EXPECT_EQ(FileBytes(image_, 3 * kMiB, 2 * kMiB), std::string(2 * kMiB, '\0'));
  EXPECT_LE(AllocatedBytes(image_) + 3 * kMiB, allocated);

  // WRITE SAME without UNMAP and a non-zero block writes it to every block.
  const std::string block = Pattern(kBlock, 42);
  ASSERT_TRUE(Good(Run(WriteSame16(6 * kMiBBlocks, 16, false), block)));
  std::string expected;
  for (int i = 0; i < 16; ++i) expected += block;
  EXPECT_EQ(FileBytes(image_, 6 * kMiB, 16 * kBlock), expected);

  // A descriptor beyond the capacity fails the whole list before anything is unmapped.
  const std::vector<uint8_t> bad = UnmapList({{5 * kMiBBlocks, 8}, {kBlocks - 1, 2}});
  WriteFile(image_, 5 * kMiB, std::string(4096, 'k'));
  EXPECT_TRUE(CheckCondition(Run(Unmap(bad.size()), std::string(bad.begin(), bad.end())),
                             ILLEGAL_REQUEST, 0x21, 0x00));
  EXPECT_EQ(FileBytes(image_, 5 * kMiB, 4096), std::string(4096, 'k'));
}

// COMPARE AND WRITE (SBC-4 5.2) through the transport: the data-out holds the blocks to compare
// then those to write. A miscompare writes nothing and says where (INFORMATION, VALID set). With
// D_SENSE set by MODE SELECT the sense comes in descriptor format (72h).
TEST_F(ScsiDaemonTest, CompareAndWriteAndDescriptorSense) {
  StartOneLun();
  Open();
  auto caw = [](uint64_t lba, uint8_t blocks) {
    Cdb cdb(16, 0);
    cdb[0] = 0x89;
    Put(&cdb, 2, lba, 8);
    cdb[13] = blocks;
    return cdb;
  };
  ASSERT_TRUE(Good(Run(ReadWrite10(WRITE_10, 10, 2), std::string(2 * kBlock, 'x'))));
  ASSERT_TRUE(Good(Run(caw(10, 2), std::string(2 * kBlock, 'x') + std::string(2 * kBlock, 'y'))));
  EXPECT_EQ(FileBytes(image_, 10 * kBlock, 2 * kBlock), std::string(2 * kBlock, 'y'));
  // The medium now differs from the compare data at byte 600.
  const std::string compare = std::string(600, 'y') + std::string(2 * kBlock - 600, 'x');
  ScsiResult miscompare = Run(caw(10, 2), compare + std::string(2 * kBlock, 'z'));
  EXPECT_TRUE(CheckCondition(miscompare, MISCOMPARE, 0x1d, 0x00));
  ASSERT_GE(miscompare.sense.size(), 7u);
  EXPECT_EQ(miscompare.sense[0], 0xf0);  // current, INFORMATION valid
  EXPECT_EQ(Get(std::string(miscompare.sense.begin(), miscompare.sense.end()), 3, 4), 600u);
  EXPECT_EQ(FileBytes(image_, 10 * kBlock, 2 * kBlock), std::string(2 * kBlock, 'y'));
  // Data-out shorter than both halves: nothing compared or written.
  EXPECT_EQ(Run(caw(10, 2), std::string(2 * kBlock, 'y')).response, VIRTIO_SCSI_S_OVERRUN);
  EXPECT_EQ(FileBytes(image_, 10 * kBlock, 2 * kBlock), std::string(2 * kBlock, 'y'));

  // MODE SENSE(6) of the control page, D_SENSE set, back with MODE SELECT(6) (PF).
  ScsiResult sensed = Run(Cdb{MODE_SENSE, 0x08, 0x0a, 0, 255, 0}, "", 255);
  ASSERT_TRUE(Good(sensed));
  ASSERT_GE(sensed.data_in.size(), 4u + 12u);
  std::string list = sensed.data_in.substr(0, 4) + sensed.data_in.substr(4, 12);
  list[0] = 0;  // MODE DATA LENGTH is reserved in MODE SELECT
  list[2] = 0;
  list[4 + 2] |= 0x04;
  ASSERT_TRUE(Good(Run(Cdb{MODE_SELECT, 0x10, 0, 0, static_cast<uint8_t>(list.size()), 0}, list)));
  ScsiResult descriptor = Run(ReadWrite10(READ_10, kBlocks, 1), "", kBlock);
  EXPECT_EQ(descriptor.status, kCheckCondition);
  ASSERT_GE(descriptor.sense.size(), 8u);
  EXPECT_EQ(descriptor.sense[0], 0x72);
  EXPECT_EQ(descriptor.sense[1], ILLEGAL_REQUEST);
  EXPECT_EQ(descriptor.sense[2], 0x21);
  EXPECT_EQ(descriptor.sense[3], 0x00);
}

TEST_F(ScsiDaemonTest, SeveralLunsOnSeveralTargets) {
  const std::string a = Image("a.img"), b = Image("b.img"), c = Image("c.img");
  StartDaemon({"--lun=file=" + a + ",target=0,lun=0", "--lun=file=" + b + ",target=0,lun=3",
               "--lun=file=" + c + ",target=2,lun=5"});
  Open();
  struct Unit {
    uint8_t target;
    uint16_t lun;
    std::string path;
  };
  const std::vector<Unit> units = {{0, 0, a}, {0, 3, b}, {2, 5, c}};
  for (size_t i = 0; i < units.size(); ++i) {
    WriteFile(units[i].path, 0, std::string(kBlock, 'A' + i));
  }
  for (size_t i = 0; i < units.size(); ++i) {
    SCOPED_TRACE(i);
    const Unit& u = units[i];
    // Each LUN reads its own image and writes only to it.
    EXPECT_EQ(Run(ReadWrite10(READ_10, 0, 1), "", kBlock, u.target, u.lun).data_in,
              std::string(kBlock, 'A' + i));
    ASSERT_TRUE(
        Good(Run(ReadWrite10(WRITE_10, 1, 1), std::string(kBlock, 'a' + i), 0, u.target, u.lun)));
  }
  for (size_t i = 0; i < units.size(); ++i) {
    EXPECT_EQ(FileBytes(units[i].path, kBlock, kBlock), std::string(kBlock, 'a' + i)) << i;
  }

  // REPORT LUNS lists the target's LUNs, addressed to any of them, or to LUN 0 where there is
  // none (target 2): SELECT REPORT 00h without the well-known LUNs, 01h only those, 02h all.
  auto report = [&](uint8_t select, uint8_t target, uint16_t lun) {
    ScsiResult r = Run(ReportLuns(select, 4096), "", 4096, target, lun);
    EXPECT_TRUE(Good(r));
    std::vector<uint32_t> luns = ReportedLuns(r.data_in);
    return std::set<uint32_t>(luns.begin(), luns.end());
  };
  EXPECT_EQ(report(0, 0, 0), (std::set<uint32_t>{0, 3}));
  EXPECT_EQ(report(0, 0, 3), (std::set<uint32_t>{0, 3}));
  EXPECT_EQ(report(0, 2, 5), (std::set<uint32_t>{5}));
  EXPECT_EQ(report(0, 2, 0), (std::set<uint32_t>{5}));
  EXPECT_EQ(report(1, 0, 0), (std::set<uint32_t>{0xc101}));  // REPORT LUNS well-known LUN
  EXPECT_EQ(report(2, 0, 0), (std::set<uint32_t>{0, 3, 0xc101}));
  // The list length counts every entry even when the allocation length truncates the list.
  ScsiResult truncated = Run(ReportLuns(0, 16), "", 16);
  ASSERT_TRUE(Good(truncated));
  ASSERT_EQ(truncated.data_in.size(), 16u);
  EXPECT_EQ(Get(truncated.data_in, 0, 4), 16u);

  // No such target: the transport says so (virtio 1.2 5.6.6.1), for every command.
  for (const Cdb& cdb : {TestUnitReady(), ReadWrite10(READ_10, 0, 1), ReportLuns(0, 4096)}) {
    ScsiResult r = Run(cdb, "", 4096, 7, 0);
    EXPECT_EQ(r.response, VIRTIO_SCSI_S_BAD_TARGET) << std::hex << int{cdb[0]};
  }
  // A known target without that LUN: LOGICAL UNIT NOT SUPPORTED (SPC-5 4.5.1), but INQUIRY
  // answers with peripheral qualifier 3 (not capable of supporting a device on this LUN).
  EXPECT_TRUE(CheckCondition(Run(TestUnitReady(), "", 0, 0, 1), ILLEGAL_REQUEST, 0x25, 0x00));
  EXPECT_TRUE(CheckCondition(Run(ReadWrite10(READ_10, 0, 1), "", kBlock, 2, 4), ILLEGAL_REQUEST,
                             0x25, 0x00));
  ScsiResult absent = Run(Inquiry(false, 0, 96), "", 96, 0, 1);
  ASSERT_TRUE(Good(absent));
  ASSERT_GE(absent.data_in.size(), 1u);
  EXPECT_EQ(static_cast<uint8_t>(absent.data_in[0]) >> 5, 3);
  EXPECT_TRUE(daemon()->IsAlive());
}

// Every request queue serves at once, each with many requests in flight; each completes once
// with its own data.
TEST_F(ScsiDaemonTest, SeveralQueuesWithManyRequestsInFlight) {
  constexpr size_t kQueues = 4, kPerQueue = 48;
  StartOneLun({"--num-queues=4"});
  Open(kQueues);
  auto lba = [](size_t q, size_t i) { return static_cast<uint32_t>((q * kPerQueue + i) * 8); };
  for (bool write : {true, false}) {
    SCOPED_TRACE(write ? "writes" : "reads");
    std::vector<std::vector<ScsiCommand>> commands(kQueues);
    std::vector<std::map<uint16_t, size_t>> index_of(kQueues);
    for (size_t q = 0; q < kQueues; ++q) {
      for (size_t i = 0; i < kPerQueue; ++i) {
        ScsiCommand c = Make(write ? 4096 : 0, write ? 0 : 4096);
        if (write) {
          const std::string data = Pattern(4096, static_cast<uint8_t>(q * kPerQueue + i));
          std::memcpy(c.data_out, data.data(), data.size());
        }
        SetScsiCdb(&c, 0, 0, ReadWrite10(write ? WRITE_10 : READ_10, lba(q, i), 8),
                   /*tag=*/q << 16 | i);
        ASSERT_OK_AND_ASSIGN(const uint16_t id,
                             AddScsiCommand(&driver_->request_queue(q)->ring(), c));
        index_of[q][id] = i;
        commands[q].push_back(c);
      }
    }
    for (size_t q = 0; q < kQueues; ++q) ASSERT_OK(driver_->request_queue(q)->Submit());
    for (size_t q = 0; q < kQueues; ++q) {
      std::vector<int> completions(kPerQueue, 0);
      for (size_t n = 0; n < kPerQueue; ++n) {
        ASSERT_OK_AND_ASSIGN(const UsedElement used,
                             driver_->request_queue(q)->WaitForUsed(kTimeout));
        ASSERT_EQ(index_of[q].count(used.id), 1u) << used.id;
        const size_t i = index_of[q][used.id];
        ++completions[i];
        ScsiResult r = ReadScsiResult(commands[q][i], used.len);
        EXPECT_TRUE(Good(r)) << q << " " << i;
        if (!write) {
          EXPECT_EQ(r.data_in, Pattern(4096, static_cast<uint8_t>(q * kPerQueue + i)));
        }
      }
      EXPECT_EQ(completions, std::vector<int>(kPerQueue, 1)) << q;
    }
  }
  for (size_t q = 0; q < kQueues; ++q) {
    EXPECT_EQ(FileBytes(image_, lba(q, kPerQueue - 1) * kBlock, 4096),
              Pattern(4096, static_cast<uint8_t>(q * kPerQueue + kPerQueue - 1)));
  }
}

// Rings of 1024 (what QEMU's vhost-user-scsi-pci may ask), split and packed, filled with commands
// (three descriptors each): every one completes once with its data.
TEST_F(ScsiDaemonTest, FullRingsOf1024SplitAndPacked) {
  StartOneLun({"--packed-ring"});
  for (bool packed : {false, true}) {
    SCOPED_TRACE(packed ? "packed" : "split");
    ScsiDriver::Options options;
    options.queue_size = 1024;
    options.max_data = 4096;
    if (packed) options.features |= Bit(kFeatureRingPacked);
    driver_.reset();
    ASSERT_OK_AND_ASSIGN(driver_, ScsiDriver::Start(session_->socket(), options));
    ASSERT_EQ(driver_->frontend()->has_feature(kFeatureRingPacked), packed);
    FrontendQueue* queue = driver_->request_queue(0);
    constexpr size_t kCommands = 1024 / 3;
    std::vector<ScsiCommand> commands;
    std::map<uint16_t, size_t> index_of;
    for (size_t i = 0; i < kCommands; ++i) {
      ScsiCommand c = Make(kBlock, 0);
      std::memset(c.data_out, static_cast<int>(i + packed), kBlock);
      SetScsiCdb(&c, 0, 0, ReadWrite10(WRITE_10, i, 1), i);
      ASSERT_OK_AND_ASSIGN(const uint16_t id, AddScsiCommand(&queue->ring(), c));
      index_of[id] = i;
      commands.push_back(c);
    }
    ASSERT_OK(queue->Submit());
    std::vector<int> completions(kCommands, 0);
    for (size_t n = 0; n < kCommands; ++n) {
      ASSERT_OK_AND_ASSIGN(const UsedElement used, queue->WaitForUsed(kTimeout));
      ASSERT_EQ(index_of.count(used.id), 1u) << used.id;
      ++completions[index_of[used.id]];
      EXPECT_TRUE(Good(ReadScsiResult(commands[index_of[used.id]], used.len)));
    }
    EXPECT_EQ(completions, std::vector<int>(kCommands, 1));
    const std::string written = FileBytes(image_, 0, kCommands * kBlock);
    for (size_t i = 0; i < kCommands; ++i) {
      ASSERT_EQ(written.substr(i * kBlock, kBlock),
                std::string(kBlock, static_cast<char>(i + packed)))
          << i;
    }
  }
}

// One thread per request queue, each running commands one at a time (ScsiDriver::Run is safe
// across queues): the daemon serves them all at once.
TEST_F(ScsiDaemonTest, QueuesServeThreadsInParallel) {
  constexpr size_t kQueues = 3;
  StartOneLun({"--num-queues=3"});
  Open(kQueues);
  std::vector<std::thread> threads;
  for (size_t q = 0; q < kQueues; ++q) {
    threads.emplace_back([this, q] {
      for (uint32_t i = 0; i < 50; ++i) {
        const uint32_t lba = q * 4096 + i * 8;
        const std::string data = Pattern(4096, static_cast<uint8_t>(q * 50 + i));
        EXPECT_TRUE(Good(Run(ReadWrite10(WRITE_10, lba, 8), data, 0, 0, 0, q)));
        EXPECT_EQ(Run(ReadWrite10(READ_10, lba, 8), "", 4096, 0, 0, q).data_in, data);
      }
    });
  }
  for (auto& t : threads) t.join();
  for (size_t q = 0; q < kQueues; ++q) {
    EXPECT_EQ(FileBytes(image_, (q * 4096 + 49 * 8) * kBlock, 4096),
              Pattern(4096, static_cast<uint8_t>(q * 50 + 49)));
  }
}

TEST_F(ScsiDaemonTest, ReadOnlyLunRefusesWrites) {
  const std::string ro = Image("ro.img");
  WriteFile(ro, 0, std::string(8192, 'r'));
  StartDaemon({"--lun=file=" + ro + ",read-only=on"});
  Open();
  // DATA PROTECT / WRITE PROTECTED for everything that would change the medium.
  EXPECT_TRUE(CheckCondition(Run(ReadWrite10(WRITE_10, 0, 1), std::string(kBlock, 'w')),
                             DATA_PROTECT, 0x27, 0x00));
  EXPECT_TRUE(CheckCondition(Run(ReadWrite16(kWrite16, 4, 2), std::string(2 * kBlock, 'w')),
                             DATA_PROTECT, 0x27, 0x00));
  const std::vector<uint8_t> list = UnmapList({{0, 8}});
  EXPECT_TRUE(CheckCondition(Run(Unmap(list.size()), std::string(list.begin(), list.end())),
                             DATA_PROTECT, 0x27, 0x00));
  EXPECT_TRUE(CheckCondition(Run(WriteSame16(0, 8, false), std::string(kBlock, 'w')), DATA_PROTECT,
                             0x27, 0x00));
  // Reads work; the image is unchanged.
  EXPECT_EQ(Run(ReadWrite10(READ_10, 0, 16), "", 8192).data_in, std::string(8192, 'r'));
  EXPECT_EQ(FileBytes(ro, 0, 8192), std::string(8192, 'r'));
  // MODE SENSE(6) says so: WP, byte 2 bit 7 of the header.
  ScsiResult mode = Run(Cdb{MODE_SENSE, 0x08, 0x3f, 0, 255, 0}, "", 255);
  ASSERT_TRUE(Good(mode));
  ASSERT_GE(mode.data_in.size(), 4u);
  EXPECT_TRUE(mode.data_in[2] & 0x80);
}

// Hostile or broken requests get sense data or a virtio-scsi response, never I/O outside the
// image, and the daemon serves on.
TEST_F(ScsiDaemonTest, BadRequestsAreAnsweredAndTheDaemonServesOn) {
  StartOneLun();
  Open();
  // LBAs beyond the capacity, or a range running past it: LOGICAL BLOCK ADDRESS OUT OF RANGE.
  EXPECT_TRUE(CheckCondition(Run(ReadWrite10(READ_10, kBlocks, 1), "", kBlock), ILLEGAL_REQUEST,
                             0x21, 0x00));
  EXPECT_TRUE(CheckCondition(Run(ReadWrite10(WRITE_10, kBlocks - 1, 2), std::string(1024, 'x')),
                             ILLEGAL_REQUEST, 0x21, 0x00));
  EXPECT_TRUE(CheckCondition(Run(ReadWrite16(kRead16, ~uint64_t{0}, 1), "", kBlock),
                             ILLEGAL_REQUEST, 0x21, 0x00));
  EXPECT_TRUE(
      CheckCondition(Run(ReadWrite16(kWrite16, ~uint64_t{0} - 1, 4), std::string(2048, 'x')),
                     ILLEGAL_REQUEST, 0x21, 0x00));
  // Opcodes not implemented, and the variable-length group: INVALID COMMAND OPERATION CODE.
  EXPECT_TRUE(CheckCondition(Run(Cdb(16, 0xc0)), ILLEGAL_REQUEST, 0x20, 0x00));
  EXPECT_TRUE(CheckCondition(Run(Cdb{0x7f, 0, 0, 0, 0, 0, 0, 0}), ILLEGAL_REQUEST, 0x20, 0x00));
  // A transfer length larger than the buffers: VIRTIO_SCSI_S_OVERRUN, nothing transferred.
  EXPECT_EQ(Run(ReadWrite10(READ_10, 0, 8), "", kBlock).response, VIRTIO_SCSI_S_OVERRUN);
  EXPECT_EQ(Run(ReadWrite10(WRITE_10, 0, 8), std::string(kBlock, 'o')).response,
            VIRTIO_SCSI_S_OVERRUN);
  EXPECT_EQ(Run(ReadWrite10(WRITE_10, 0, 1)).response, VIRTIO_SCSI_S_OVERRUN);  // no data at all
  EXPECT_EQ(FileBytes(image_, 0, kBlock), std::string(kBlock, '\0'));

  // A request header whose CDB area stops short of what its opcode needs (READ(10) with 6 CDB
  // bytes): INVALID FIELD IN CDB, nothing read.
  ScsiCommand short_cdb = Make(0, kBlock);
  SetScsiCdb(&short_cdb, 0, 0, ReadWrite10(READ_10, 0, 1));
  short_cdb.req_len = offsetof(virtio_scsi_cmd_req, cdb) + 6;
  EXPECT_TRUE(CheckCondition(RunRaw(short_cdb), ILLEGAL_REQUEST, 0x24, 0x00));

  // No room for the response header: the chain comes back with nothing written.
  for (uint32_t resp_len : {0u, 4u}) {
    SCOPED_TRACE(resp_len);
    ScsiCommand no_room = Make(0, 0);
    SetScsiCdb(&no_room, 0, 0, TestUnitReady());
    no_room.resp_len = resp_len;
    ScsiResult r = RunRaw(no_room);
    EXPECT_EQ(r.used_len, 0u);
  }
  // A request header too short to hold the LUN and tag, and a chain without one at all.
  ScsiCommand no_header = Make(0, 0);
  SetScsiCdb(&no_header, 0, 0, TestUnitReady());
  no_header.req_len = 8;
  ScsiResult truncated_header = RunRaw(no_header);
  EXPECT_NE(truncated_header.response, VIRTIO_SCSI_S_OK);
  no_header.req_len = 0;
  RunRaw(no_header);

  // The LBA is checked against the image and nothing was written anywhere.
  struct stat st;
  ASSERT_EQ(stat(image_.c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), kDiskBytes);  // the image did not grow
  EXPECT_EQ(FileBytes(image_, kDiskBytes - kBlock, kBlock), std::string(kBlock, '\0'));
  ExpectServing();
}

TEST_F(ScsiDaemonTest, TaskManagementFunctions) {
  StartOneLun({"--lun=file=" + Image("b.img") + ",target=1"});
  Open();
  auto tmf = [&](uint32_t subtype, uint8_t target = 0, uint16_t lun = 0, uint64_t tag = 0) {
    absl::StatusOr<uint8_t> r = driver_->TaskManagement(subtype, target, lun, tag);
    EXPECT_OK(r);
    return r.ok() ? int{*r} : -1;
  };
  // Tags never seen: ABORT TASK and QUERY TASK find nothing to act on, which is FUNCTION
  // COMPLETE (SAM-5 7.2, 7.9); the task-set functions have nothing to abort either.
  EXPECT_EQ(tmf(VIRTIO_SCSI_T_TMF_ABORT_TASK, 0, 0, 0x1234), kScsiFunctionComplete);
  EXPECT_EQ(tmf(VIRTIO_SCSI_T_TMF_QUERY_TASK, 0, 0, 0x1234), kScsiFunctionComplete);
  EXPECT_EQ(tmf(VIRTIO_SCSI_T_TMF_QUERY_TASK_SET), kScsiFunctionComplete);
  EXPECT_EQ(tmf(VIRTIO_SCSI_T_TMF_ABORT_TASK_SET), kScsiFunctionComplete);
  EXPECT_EQ(tmf(VIRTIO_SCSI_T_TMF_CLEAR_TASK_SET), kScsiFunctionComplete);
  // I_T NEXUS RESET reports itself to the target's LUNs (SAM-5 6.3.2: 29/07 I_T NEXUS LOSS
  // OCCURRED), once.
  EXPECT_EQ(tmf(VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET), kScsiFunctionComplete);
  EXPECT_TRUE(CheckCondition(Run(TestUnitReady()), UNIT_ATTENTION, 0x29, 0x07));
  EXPECT_TRUE(Good(Run(TestUnitReady())));
  // No ACA (NormACA is 0 in INQUIRY): CLEAR ACA is rejected; so is a subtype that does not exist.
  EXPECT_EQ(tmf(VIRTIO_SCSI_T_TMF_CLEAR_ACA), VIRTIO_SCSI_S_FUNCTION_REJECTED);
  EXPECT_EQ(tmf(99), VIRTIO_SCSI_S_FUNCTION_REJECTED);
  // Addressed to no target, or to no LUN of a target.
  EXPECT_EQ(tmf(VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET, 9, 0), VIRTIO_SCSI_S_BAD_TARGET);
  EXPECT_EQ(tmf(VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET, 0, 6), VIRTIO_SCSI_S_INCORRECT_LUN);

  // LOGICAL UNIT RESET completes, and the next command learns of it from a unit attention
  // (SAM-5 6.3.2: 29/03 BUS DEVICE RESET FUNCTION OCCURRED); the one after that runs. The other
  // target's LUN is not reset.
  EXPECT_EQ(tmf(VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET), kScsiFunctionComplete);
  EXPECT_TRUE(CheckCondition(Run(TestUnitReady()), UNIT_ATTENTION, 0x29, 0x03));
  EXPECT_TRUE(Good(Run(TestUnitReady())));
  EXPECT_TRUE(Good(Run(TestUnitReady(), "", 0, 1, 0)));

  // Asynchronous notification: nothing is reported that was not asked for, and the request is
  // answered (virtio 1.2 5.6.6.3).
  for (uint32_t type : {VIRTIO_SCSI_T_AN_QUERY, VIRTIO_SCSI_T_AN_SUBSCRIBE}) {
    ASSERT_OK_AND_ASSIGN(const virtio_scsi_ctrl_an_resp an,
                         driver_->AsyncNotification(type, 0, 0, 0x7e));
    EXPECT_EQ(an.response, VIRTIO_SCSI_S_OK) << type;
    EXPECT_EQ(an.event_actual & ~0x7eu, 0u) << type;
  }
  // A control request shorter than its type's structure comes back; the queue serves on.
  ASSERT_OK_AND_ASSIGN(ScsiControl bad,
                       AllocateScsiTmf(driver_->ram(), VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET, 0, 0));
  bad.req_len = 6;
  ASSERT_OK_AND_ASSIGN(const uint16_t id, AddScsiControl(&driver_->control_queue()->ring(), bad));
  ASSERT_OK(driver_->control_queue()->Submit());
  ASSERT_OK(driver_->WaitFor(driver_->control_queue(), id).status());
  EXPECT_EQ(tmf(VIRTIO_SCSI_T_TMF_ABORT_TASK_SET), kScsiFunctionComplete);
  ExpectServing();
}

// Task management with commands in flight on a request queue: each command completes exactly
// once, done (GOOD, its data on the disk) or aborted (VIRTIO_SCSI_S_ABORTED), and every function
// completes.
TEST_F(ScsiDaemonTest, TaskManagementWithCommandsInFlight) {
  StartOneLun({"--num-queues=2"});
  Open(2);
  constexpr size_t kCommands = 64;
  constexpr uint32_t kBytes = 64 * 1024;
  std::vector<ScsiCommand> commands;
  std::map<uint16_t, size_t> index_of;
  FrontendQueue* queue = driver_->request_queue(1);
  for (size_t i = 0; i < kCommands; ++i) {
    ScsiCommand c = Make(kBytes, 0);
    std::memset(c.data_out, 'A' + i % 26, kBytes);
    SetScsiCdb(&c, 0, 0, ReadWrite10(WRITE_10, i * (kBytes / kBlock), kBytes / kBlock),
               /*tag=*/100 + i);
    ASSERT_OK_AND_ASSIGN(const uint16_t id, AddScsiCommand(&queue->ring(), c));
    index_of[id] = i;
    commands.push_back(c);
  }
  ASSERT_OK(queue->Submit());
  std::vector<ScsiControl> tmfs;
  for (const auto& [subtype, tag] : std::vector<std::pair<uint32_t, uint64_t>>{
           {VIRTIO_SCSI_T_TMF_ABORT_TASK, 100 + kCommands - 1},
           {VIRTIO_SCSI_T_TMF_QUERY_TASK, 100 + kCommands - 2},
           {VIRTIO_SCSI_T_TMF_ABORT_TASK_SET, 0},
           {VIRTIO_SCSI_T_TMF_CLEAR_TASK_SET, 0}}) {
    ASSERT_OK_AND_ASSIGN(ScsiControl tmf, AllocateScsiTmf(driver_->ram(), subtype, 0, 0, tag));
    ASSERT_OK(AddScsiControl(&driver_->control_queue()->ring(), tmf).status());
    tmfs.push_back(tmf);
  }
  ASSERT_OK(driver_->control_queue()->Submit());
  for (size_t i = 0; i < tmfs.size(); ++i) {
    ASSERT_OK(driver_->control_queue()->WaitForUsed(kTimeout).status());
  }
  for (size_t i = 0; i < tmfs.size(); ++i) {
    const uint8_t response = tmfs[i].tmf_resp().response;
    if (i == 1) {  // QUERY TASK: still there, or not
      EXPECT_TRUE(response == kScsiFunctionComplete || response == VIRTIO_SCSI_S_FUNCTION_SUCCEEDED)
          << int{response};
    } else {
      EXPECT_EQ(response, kScsiFunctionComplete) << i;
    }
  }
  std::vector<int> completions(kCommands, 0);
  for (size_t n = 0; n < kCommands; ++n) {
    ASSERT_OK_AND_ASSIGN(const UsedElement used, queue->WaitForUsed(kTimeout));
    ASSERT_EQ(index_of.count(used.id), 1u) << used.id;
    const size_t i = index_of[used.id];
    ++completions[i];
    const ScsiResult r = ReadScsiResult(commands[i], used.len);
    if (r.response == VIRTIO_SCSI_S_ABORTED) continue;
    EXPECT_TRUE(Good(r)) << i;
    EXPECT_EQ(FileBytes(image_, i * kBytes, kBytes), std::string(kBytes, 'A' + i % 26)) << i;
  }
  EXPECT_EQ(completions, std::vector<int>(kCommands, 1));
  EXPECT_TRUE(Good(Run(TestUnitReady(), "", 0, 0, 0, 1)));
  ExpectServing();
}

// A LUN grown on the host (SIGHUP re-reads the sizes): with VIRTIO_SCSI_F_CHANGE a
// PARAM_CHANGE event names it with CAPACITY DATA HAS CHANGED (virtio 1.2 5.6.6.4.3: ASC in bits
// 0-7 of the reason, ASCQ in 8-15), its next command gets the unit attention, and READ CAPACITY
// then reports the new size. The other LUN is untouched.
TEST_F(ScsiDaemonTest, AGrownLunSendsAParameterChangeEvent) {
  const std::string grown = Image("grown.img");
  StartOneLun({"--lun=file=" + grown + ",target=1,lun=4"});
  Open();
  ASSERT_TRUE(Good(Run(TestUnitReady(), "", 0, 1, 4)));
  ASSERT_EQ(truncate(grown.c_str(), 2 * kDiskBytes), 0);
  ASSERT_OK(daemon()->Signal(SIGHUP));
  ASSERT_OK_AND_ASSIGN(const virtio_scsi_event event, driver_->WaitForEvent(kTimeout));
  EXPECT_EQ(event.event, VIRTIO_SCSI_T_PARAM_CHANGE);
  EXPECT_EQ(std::memcmp(event.lun, EventLunField(1, 4).data(), 8), 0);
  EXPECT_EQ(event.reason, 0x2au | 0x09u << 8);
  EXPECT_TRUE(CheckCondition(Run(TestUnitReady(), "", 0, 1, 4), UNIT_ATTENTION, 0x2a, 0x09));
  ScsiResult capacity = Run(ReadCapacity16(32), "", 32, 1, 4);
  ASSERT_TRUE(Good(capacity));
  EXPECT_EQ(Get(capacity.data_in, 0, 8), 2 * kBlocks - 1);
  // The new blocks are served.
  const std::string data = Pattern(kBlock, 5);
  ASSERT_TRUE(Good(Run(ReadWrite10(WRITE_10, 2 * kBlocks - 1, 1), data, 0, 1, 4)));
  EXPECT_EQ(FileBytes(grown, 2 * kDiskBytes - kBlock, kBlock), data);
  EXPECT_TRUE(Good(Run(TestUnitReady())));
  ASSERT_OK_AND_ASSIGN(const absl::optional<virtio_scsi_event> more, driver_->PollEvent());
  EXPECT_FALSE(more.has_value());
}

// LUNs added and removed at run time through --control-socket (the daemon's own --hotplug client
// opens the images and passes them): each change is a TRANSPORT_RESET event naming the LUN
// (RESCAN, REMOVED; virtio 1.2 5.6.6.4.1), the target's other LUNs report REPORTED LUNS DATA HAS
// CHANGED (SPC-5: 3F/0E) once, and the LUN serves, or is gone, at once.
TEST_F(ScsiDaemonTest, LunsHotAddedAndRemoved) {
  const std::string control = session_->File("ctl");
  StartOneLun({"--control-socket=" + control});
  Open();
  // One client command; returns its exit status and prints what it said.
  auto hotplug = [&](const std::string& command, std::string* out = nullptr) {
    const std::string line = RunfilePath("vhost-user-scsi/vhost-user-scsi") +
                             " --control-socket=" + control + " --hotplug='" + command + "' 2>&1";
    FILE* pipe = popen(line.c_str(), "r");
    std::string text;
    char buffer[256];
    while (pipe != nullptr && fgets(buffer, sizeof(buffer), pipe) != nullptr) text += buffer;
    const int status = pipe != nullptr ? pclose(pipe) : -1;
    if (out != nullptr) *out = text;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  };
  auto expect_event = [&](uint8_t target, uint16_t lun, uint32_t reason) {
    absl::StatusOr<virtio_scsi_event> event = driver_->WaitForEvent(kTimeout);
    ASSERT_OK(event);
    EXPECT_EQ(event->event, VIRTIO_SCSI_T_TRANSPORT_RESET);
    EXPECT_EQ(std::memcmp(event->lun, EventLunField(target, lun).data(), 8), 0);
    EXPECT_EQ(event->reason, reason);
  };
  auto luns = [&](uint8_t target, uint16_t lun) {
    std::vector<uint32_t> list =
        ReportedLuns(Run(ReportLuns(0, 4096), "", 4096, target, lun).data_in);
    return std::set<uint32_t>(list.begin(), list.end());
  };
  const std::string hot = Image("hot.img"), far = Image("far.img");
  WriteFile(hot, 0, std::string(kBlock, 'h'));
  EXPECT_TRUE(CheckCondition(Run(TestUnitReady(), "", 0, 0, 5), ILLEGAL_REQUEST, 0x25, 0x00));

  std::string said;
  ASSERT_EQ(hotplug("add file=" + hot + ",target=0,lun=5,serial=HOT-5", &said), 0) << said;
  EXPECT_EQ(said, "ok target=0 lun=5\n");
  expect_event(0, 5, VIRTIO_SCSI_EVT_RESET_RESCAN);
  EXPECT_EQ(Run(ReadWrite10(READ_10, 0, 1), "", kBlock, 0, 5).data_in, std::string(kBlock, 'h'));
  ASSERT_TRUE(Good(Run(ReadWrite10(WRITE_10, 1, 1), std::string(kBlock, 'H'), 0, 0, 5)));
  EXPECT_EQ(FileBytes(hot, kBlock, kBlock), std::string(kBlock, 'H'));
  EXPECT_EQ(Run(Inquiry(true, 0x80, 255), "", 255, 0, 5).data_in.substr(4), "HOT-5");
  EXPECT_TRUE(CheckCondition(Run(TestUnitReady()), UNIT_ATTENTION, 0x3f, 0x0e));
  EXPECT_TRUE(Good(Run(TestUnitReady())));
  EXPECT_EQ(luns(0, 0), (std::set<uint32_t>{0, 5}));

  // A new target.
  EXPECT_EQ(Run(TestUnitReady(), "", 0, 3, 0).response, VIRTIO_SCSI_S_BAD_TARGET);
  ASSERT_EQ(hotplug("add file=" + far + ",target=3", &said), 0) << said;
  expect_event(3, 0, VIRTIO_SCSI_EVT_RESET_RESCAN);
  EXPECT_TRUE(Good(Run(TestUnitReady(), "", 0, 3, 0)));
  ASSERT_EQ(hotplug("list", &said), 0);
  EXPECT_EQ(said, "ok 0:0 0:5 3:0\n");

  // Refused: an address taken, an image that cannot be opened, a LUN that does not exist. The
  // daemon serves on and announces nothing.
  EXPECT_NE(hotplug("add file=" + far + ",target=0,lun=5", &said), 0) << said;
  EXPECT_NE(hotplug("add file=" + session_->File("missing.img"), &said), 0) << said;
  EXPECT_NE(hotplug("remove target=0,lun=9", &said), 0) << said;
  EXPECT_NE(hotplug("frobnicate", &said), 0) << said;

  // Removed: gone at once, its image untouched by anything after.
  ASSERT_EQ(hotplug("remove target=0,lun=5", &said), 0) << said;
  expect_event(0, 5, VIRTIO_SCSI_EVT_RESET_REMOVED);
  EXPECT_TRUE(CheckCondition(Run(ReadWrite10(WRITE_10, 2, 1), std::string(kBlock, 'X'), 0, 0, 5),
                             ILLEGAL_REQUEST, 0x25, 0x00));
  EXPECT_EQ(FileBytes(hot, 2 * kBlock, kBlock), std::string(kBlock, '\0'));
  EXPECT_TRUE(CheckCondition(Run(TestUnitReady()), UNIT_ATTENTION, 0x3f, 0x0e));
  EXPECT_EQ(luns(0, 0), (std::set<uint32_t>{0}));
  // The last LUN of a target removed: the target is gone.
  ASSERT_EQ(hotplug("remove target=3,lun=0", &said), 0) << said;
  expect_event(3, 0, VIRTIO_SCSI_EVT_RESET_REMOVED);
  EXPECT_EQ(Run(TestUnitReady(), "", 0, 3, 0).response, VIRTIO_SCSI_S_BAD_TARGET);
  ASSERT_OK_AND_ASSIGN(const absl::optional<virtio_scsi_event> more, driver_->PollEvent());
  EXPECT_FALSE(more.has_value());
  ExpectServing();
}

// A daemon killed after taking requests it never completed: a new one on the same socket, handed
// the front end's inflight region (VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD), runs those recorded in
// flight, then serves the ring from where the old one stopped taking; each completes once.
TEST_F(ScsiDaemonTest, RequestsRecordedInFlightRunAgainAfterARestart) {
  image_ = Image("disk.img");
  std::string blocks;
  for (int i = 0; i < 16; ++i) blocks.append(kBlock, static_cast<char>('a' + i));
  WriteFile(image_, 0, blocks);
  const std::vector<std::string> args = {"--lun=file=" + image_};
  StartDaemon(args);
  Open(1, /*inflight=*/true);
  // Request queue 0 is virtqueue 2: the third part of the region.
  uint8_t* region = driver_->device()->inflight_region() + 2 * InflightQueueBytes(256);
  auto* header = reinterpret_cast<InflightQueueHeader*>(region);
  auto desc = [&](uint16_t head) {
    return reinterpret_cast<InflightDescSplit*>(region + sizeof(InflightQueueHeader)) + head;
  };
  EXPECT_EQ(header->version, kInflightVersion);
  EXPECT_EQ(header->desc_num, 256);
  for (uint32_t lba = 0; lba < 4; ++lba) {
    EXPECT_EQ(Run(ReadWrite10(READ_10, lba, 1), "", kBlock).data_in,
              std::string(kBlock, 'a' + lba));
  }
  FrontendQueue* queue = driver_->request_queue(0);
  // Stopped (so the daemon's last record is written), then killed.
  ASSERT_OK(queue->Stop(driver_->frontend()).status());
  ASSERT_OK(daemon()->Signal(SIGKILL));
  ASSERT_OK(daemon()->Wait(kTimeout).status());
  EXPECT_EQ(header->used_idx, 4);
  for (uint16_t head = 0; head < 256; ++head) ASSERT_EQ(desc(head)->inflight, 0) << head;

  // Three requests the killed daemon had taken (recorded as a daemon records them), one it never
  // saw, and one sent to the new daemon.
  std::vector<ScsiCommand> commands;
  std::vector<uint16_t> heads;
  auto add = [&](uint32_t lba) {
    ScsiCommand c = Make(0, kBlock);
    SetScsiCdb(&c, 0, 0, ReadWrite10(READ_10, lba, 1), lba);
    absl::StatusOr<uint16_t> head = AddScsiCommand(&queue->ring(), c);
    ASSERT_OK(head);
    commands.push_back(c);
    heads.push_back(*head);
  };
  for (uint32_t lba = 4; lba < 8; ++lba) add(lba);
  ASSERT_OK(queue->Submit());
  for (int i = 0; i < 3; ++i) {
    desc(heads[i])->counter = 10 + i;
    desc(heads[i])->inflight = 1;
  }
  StartDaemon(args);
  ASSERT_OK(driver_->device()->Reconnect(session_->socket(), driver_->device_options()));
  add(8);
  ASSERT_OK(queue->Submit());
  std::vector<int> completions(heads.size(), 0);
  for (size_t n = 0; n < heads.size(); ++n) {
    ASSERT_OK_AND_ASSIGN(const UsedElement used, queue->WaitForUsed(kTimeout));
    for (size_t i = 0; i < heads.size(); ++i) {
      if (used.id != heads[i]) continue;
      ++completions[i];
      ScsiResult r = ReadScsiResult(commands[i], used.len);
      EXPECT_TRUE(Good(r)) << i;
      EXPECT_EQ(r.data_in, std::string(kBlock, 'a' + 4 + i)) << i;
    }
  }
  EXPECT_EQ(completions, std::vector<int>(heads.size(), 1));
  // Nothing more arrives before the next request's own completion.
  EXPECT_EQ(Run(ReadWrite10(READ_10, 9, 1), "", kBlock).data_in, std::string(kBlock, 'j'));
  ASSERT_OK(queue->Stop(driver_->frontend()).status());
  EXPECT_EQ(header->used_idx, 10);
  for (uint16_t head = 0; head < 256; ++head) EXPECT_EQ(desc(head)->inflight, 0) << head;
  EXPECT_TRUE(daemon()->IsAlive());
}

// A daemon killed with requests in flight: a new one on the same socket, handed the front end's
// inflight region (VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD), runs them, then serves the ring on;
// every request completes exactly once with its data.
TEST_F(ScsiDaemonTest, RequestsInFlightAcrossSigkillsCompleteOnce) {
  constexpr int kBlocksUsed = 64;
  image_ = Image("disk.img");
  std::string blocks;
  for (int i = 0; i < kBlocksUsed; ++i) blocks.append(kBlock, static_cast<char>(i));
  WriteFile(image_, 0, blocks);
  const std::vector<std::string> args = {"--lun=file=" + image_};
  StartDaemon(args);
  Open(1, /*inflight=*/true);
  std::vector<ScsiCommand> commands;
  std::vector<uint32_t> lbas;
  std::map<uint16_t, size_t> index_of;
  FrontendQueue* queue = driver_->request_queue(0);
  // Fewer requests than the ring holds (3 descriptors each): no head is reused.
  for (int round = 0; round < 4; ++round) {
    for (int i = 0; i < 10; ++i) {
      const uint32_t lba = (round * 10 + i) % kBlocksUsed;
      ScsiCommand c = Make(0, kBlock);
      SetScsiCdb(&c, 0, 0, ReadWrite10(READ_10, lba, 1), commands.size());
      ASSERT_OK_AND_ASSIGN(const uint16_t id, AddScsiCommand(&queue->ring(), c));
      index_of[id] = commands.size();
      commands.push_back(c);
      lbas.push_back(lba);
    }
    ASSERT_OK(queue->Submit());
    ASSERT_OK(daemon()->Signal(SIGKILL));
    ASSERT_OK(daemon()->Wait(kTimeout).status());
    StartDaemon(args);
    ASSERT_OK(driver_->device()->Reconnect(session_->socket(), driver_->device_options()));
  }
  std::vector<int> completions(commands.size(), 0);
  for (size_t n = 0; n < commands.size(); ++n) {
    ASSERT_OK_AND_ASSIGN(const UsedElement used, queue->WaitForUsed(kTimeout));
    ASSERT_EQ(index_of.count(used.id), 1u) << used.id;
    const size_t i = index_of[used.id];
    ++completions[i];
    ScsiResult r = ReadScsiResult(commands[i], used.len);
    EXPECT_TRUE(Good(r)) << i;
    EXPECT_EQ(r.data_in, std::string(kBlock, static_cast<char>(lbas[i]))) << i;
  }
  EXPECT_EQ(completions, std::vector<int>(commands.size(), 1));
  // Nothing more arrives before the next request's own completion.
  ScsiResult next = Run(ReadWrite10(READ_10, 3, 1), "", kBlock);
  EXPECT_TRUE(Good(next));
  EXPECT_EQ(next.data_in, std::string(kBlock, '\3'));
  // The control queue serves after the restart too.
  ASSERT_OK_AND_ASSIGN(const uint8_t reset,
                       driver_->TaskManagement(VIRTIO_SCSI_T_TMF_ABORT_TASK_SET, 0, 0));
  EXPECT_EQ(reset, kScsiFunctionComplete);
}

}  // namespace
}  // namespace vhost

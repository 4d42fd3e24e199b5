// virtio-snd on the wire (virtio 1.2 §5.14, controls from virtio 1.3 §5.14.6.10): Linux's
// <linux/virtio_snd.h> for what it has, and here what Debian's copy lacks (control elements)
// plus the tables a device needs (rates in Hz, sample widths, format names).
#ifndef VHOST_USER_SND_SND_SPEC_H_
#define VHOST_USER_SND_SND_SPEC_H_

#include <linux/virtio_snd.h>

#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"

// The wire structures are used in place; the suite runs on little-endian hosts only.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "virtio-snd is little-endian");

static_assert(sizeof(virtio_snd_config) == 12);
static_assert(sizeof(virtio_snd_hdr) == 4);
static_assert(sizeof(virtio_snd_event) == 8);
static_assert(sizeof(virtio_snd_query_info) == 16);
static_assert(sizeof(virtio_snd_jack_info) == 24);
static_assert(sizeof(virtio_snd_jack_remap) == 16);
static_assert(sizeof(virtio_snd_pcm_hdr) == 8);
static_assert(sizeof(virtio_snd_pcm_info) == 32);
static_assert(sizeof(virtio_snd_pcm_set_params) == 24);
static_assert(sizeof(virtio_snd_pcm_xfer) == 4);
static_assert(sizeof(virtio_snd_pcm_status) == 8);
static_assert(sizeof(virtio_snd_chmap_hdr) == 8);
static_assert(sizeof(virtio_snd_chmap_info) == 24);

namespace vhost::snd {

// The answer codes of every request (VIRTIO_SND_S_*).
using SndStatus = uint32_t;

// "OK", "BAD_MSG", ... for logs and test messages.
absl::string_view StatusName(SndStatus status);

// ---- Control elements (virtio 1.3 §5.14.6.10), absent from Debian's <linux/virtio_snd.h>. Named
// without the VIRTIO_ prefix so that a newer system header that has them does not collide.

// Feature bit: the device has control elements (and virtio_snd_config grows `controls`).
inline constexpr unsigned kSndFCtls = 0;

// Request codes.
inline constexpr uint32_t kSndRCtlInfo = 0x0300;
inline constexpr uint32_t kSndRCtlEnumItems = 0x0301;
inline constexpr uint32_t kSndRCtlRead = 0x0302;
inline constexpr uint32_t kSndRCtlWrite = 0x0303;
inline constexpr uint32_t kSndRCtlTlvRead = 0x0304;
inline constexpr uint32_t kSndRCtlTlvWrite = 0x0305;
inline constexpr uint32_t kSndRCtlTlvCommand = 0x0306;
// Event code.
inline constexpr uint32_t kSndEvtCtlNotify = 0x1200;

// Roles, value types, access bits (1 << kSndCtlAccess*), notification mask bits.
inline constexpr uint32_t kSndCtlRoleUndefined = 0;
inline constexpr uint32_t kSndCtlRoleVolume = 1;
inline constexpr uint32_t kSndCtlRoleMute = 2;
inline constexpr uint32_t kSndCtlRoleGain = 3;
inline constexpr uint32_t kSndCtlTypeBoolean = 0;
inline constexpr uint32_t kSndCtlTypeInteger = 1;
inline constexpr uint32_t kSndCtlTypeInteger64 = 2;
inline constexpr uint32_t kSndCtlTypeEnumerated = 3;
inline constexpr uint32_t kSndCtlTypeBytes = 4;
inline constexpr uint32_t kSndCtlTypeIec958 = 5;
inline constexpr unsigned kSndCtlAccessRead = 0;
inline constexpr unsigned kSndCtlAccessWrite = 1;
inline constexpr unsigned kSndCtlAccessVolatile = 2;
inline constexpr unsigned kSndCtlAccessInactive = 3;
inline constexpr unsigned kSndCtlAccessTlvRead = 4;
inline constexpr unsigned kSndCtlAccessTlvWrite = 5;
inline constexpr unsigned kSndCtlAccessTlvCommand = 6;
inline constexpr unsigned kSndCtlEvtMaskValue = 0;
inline constexpr unsigned kSndCtlEvtMaskInfo = 1;
inline constexpr unsigned kSndCtlEvtMaskTlv = 2;

// The configuration space with VIRTIO_SND_F_CTLS negotiated.
struct SndConfigCtls {
  uint32_t jacks;
  uint32_t streams;
  uint32_t chmaps;
  uint32_t controls;
};

struct SndCtlHdr {
  virtio_snd_hdr hdr;
  uint32_t control_id;  // 0 ... controls - 1
};

struct SndCtlInfo {
  virtio_snd_info hdr;
  uint32_t role;
  uint32_t type;
  uint32_t access;  // 1 << kSndCtlAccess*
  uint32_t count;   // members in the value
  uint32_t index;   // for elements sharing a name
  uint8_t name[44];
  uint8_t padding[4];  // the union below is 8-byte aligned
  union {
    struct {
      uint32_t min, max, step;
    } integer;
    struct {
      uint64_t min, max, step;
    } integer64;
    struct {
      uint32_t items;
    } enumerated;
  } value;
};

struct SndCtlEnumItem {
  uint8_t item[64];
};

struct SndCtlIec958 {
  uint8_t status[24];
  uint8_t subcode[147];
  uint8_t pad;
  uint8_t dig_subframe[4];
};

struct SndCtlValue {
  union {
    uint32_t integer[128];
    uint64_t integer64[64];
    uint32_t enumerated[128];
    uint8_t bytes[512];
    SndCtlIec958 iec958;
  } value;
};

struct SndCtlEvent {
  virtio_snd_hdr hdr;  // kSndEvtCtlNotify
  uint16_t control_id;
  uint16_t mask;  // 1 << kSndCtlEvtMask*
};

static_assert(sizeof(SndConfigCtls) == 16);
static_assert(sizeof(SndCtlHdr) == 8);
static_assert(offsetof(SndCtlInfo, value) == 72);
static_assert(sizeof(SndCtlInfo) == 96);
static_assert(sizeof(SndCtlEnumItem) == 64);
static_assert(sizeof(SndCtlValue) == 512);
static_assert(sizeof(SndCtlEvent) == 8);

// ---- PCM tables.

// How many VIRTIO_SND_PCM_FMT_* and VIRTIO_SND_PCM_RATE_* values the spec defines.
inline constexpr unsigned kFormatCount = VIRTIO_SND_PCM_FMT_IEC958_SUBFRAME + 1;
inline constexpr unsigned kRateCount = VIRTIO_SND_PCM_RATE_384000 + 1;

// The frame rate of VIRTIO_SND_PCM_RATE_*, 0 for a value the spec does not define.
uint32_t RateHz(uint8_t rate);
// The VIRTIO_SND_PCM_RATE_* of `hz`, or -1.
int RateFromHz(uint32_t hz);

// Bits one sample takes in a frame (the "physical width": S24 is 32), 0 for an undefined format.
unsigned FormatPhysicalBits(uint8_t format);
// "s16", "float64", "iec958_subframe": the enum's name in lower case; "" if undefined.
absl::string_view FormatName(uint8_t format);
// The VIRTIO_SND_PCM_FMT_* named `name` (as FormatName spells it), or -1.
int FormatFromName(absl::string_view name);

}  // namespace vhost::snd

#endif  // VHOST_USER_SND_SND_SPEC_H_

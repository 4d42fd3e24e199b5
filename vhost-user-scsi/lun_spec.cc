#include "vhost-user-scsi/lun_spec.h"

#include <set>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace vhost::scsi {
namespace {

absl::Status Bad(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("--lun: ", what));
}

// "1G", "512M", "4096": bytes with an optional binary suffix.
bool ParseSize(absl::string_view text, uint64_t* bytes) {
  uint64_t unit = 1;
  if (!text.empty()) {
    switch (text.back()) {
      case 'K':
        unit = uint64_t{1} << 10;
        break;
      case 'M':
        unit = uint64_t{1} << 20;
        break;
      case 'G':
        unit = uint64_t{1} << 30;
        break;
      case 'T':
        unit = uint64_t{1} << 40;
        break;
      default:
        break;
    }
    if (unit != 1) text.remove_suffix(1);
  }
  uint64_t n = 0;
  if (!absl::SimpleAtoi(text, &n) || n == 0 || n > UINT64_MAX / unit) return false;
  *bytes = n * unit;
  return true;
}

bool ParseOnOff(absl::string_view text, bool* value) {
  if (text == "on" || text == "true" || text == "1") {
    *value = true;
  } else if (text == "off" || text == "false" || text == "0") {
    *value = false;
  } else {
    return false;
  }
  return true;
}

// Fields with a fixed width in INQUIRY (vendor 8, product 16 bytes) or the VPD pages: printable
// ASCII only, so what the guest reads is what the user wrote.
absl::Status CheckAscii(absl::string_view key, absl::string_view value, size_t max) {
  if (value.size() > max) return Bad(absl::StrCat(key, "= is longer than ", max, " bytes"));
  for (char c : value) {
    if (c < 0x20 || c > 0x7e) return Bad(absl::StrCat(key, "= must be printable ASCII"));
  }
  return absl::OkStatus();
}

// Parses one spec; `lun_given` says whether lun= was there.
absl::StatusOr<LunSpec> ParseOne(absl::string_view text, bool* lun_given) {
  LunSpec spec;
  *lun_given = false;
  bool null_given = false;
  for (absl::string_view field : absl::StrSplit(text, ',')) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(field, absl::MaxSplits('=', 1));
    const absl::string_view key = kv.first, value = kv.second;
    if (key == "file") {
      if (value.empty()) return Bad("file= needs a path");
      spec.file = std::string(value);
    } else if (key == "null") {
      if (!ParseSize(value, &spec.null_size))
        return Bad(absl::StrCat("null=", value, " is not a size"));
      null_given = true;
    } else if (key == "target") {
      if (!absl::SimpleAtoi(value, &spec.target) || spec.target > kMaxTarget) {
        return Bad(absl::StrCat("target=", value, " is not in 0..", kMaxTarget));
      }
    } else if (key == "lun") {
      if (!absl::SimpleAtoi(value, &spec.lun) || spec.lun > kMaxLun) {
        return Bad(absl::StrCat("lun=", value, " is not in 0..", kMaxLun));
      }
      *lun_given = true;
    } else if (key == "read-only" || key == "ro") {
      if (!ParseOnOff(value, &spec.read_only)) return Bad(absl::StrCat(key, "= must be on or off"));
    } else if (key == "block-size") {
      if (!absl::SimpleAtoi(value, &spec.block_size) ||
          (spec.block_size != 512 && spec.block_size != 4096)) {
        return Bad("block-size= must be 512 or 4096");
      }
    } else if (key == "pr-state") {
      if (value.empty()) return Bad("pr-state= needs a path");
      spec.pr_state = std::string(value);
    } else if (key == "serial") {
      if (absl::Status s = CheckAscii(key, value, 64); !s.ok()) return s;
      spec.identity.serial = std::string(value);
    } else if (key == "vendor") {
      if (absl::Status s = CheckAscii(key, value, 8); !s.ok()) return s;
      spec.identity.vendor = std::string(value);
    } else if (key == "product") {
      if (absl::Status s = CheckAscii(key, value, 16); !s.ok()) return s;
      spec.identity.product = std::string(value);
    } else if (key == "wwn") {
      absl::string_view hex = value;
      if (!absl::ConsumePrefix(&hex, "0x") || hex.empty() || hex.size() > 16 ||
          !absl::SimpleHexAtoi(hex, &spec.identity.wwn) || spec.identity.wwn == 0) {
        return Bad(absl::StrCat("wwn=", value, " is not a non-zero 64-bit 0x... number"));
      }
    } else {
      return Bad(
          absl::StrCat("unknown key '", key,
                       "' (file, null, target, lun, read-only, block-size, pr-state, serial, "
                       "vendor, product, wwn)"));
    }
  }
  if (spec.file.empty() == !null_given) return Bad("each LUN needs exactly one of file= and null=");
  if (null_given && spec.null_size % spec.block_size != 0) {
    return Bad("null= must be a multiple of the block size");
  }
  return spec;
}

bool Taken(const std::vector<LunSpec>& specs, uint32_t target, uint32_t lun) {
  for (const LunSpec& s : specs) {
    if (s.target == target && s.lun == lun) return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<LunSpec> ParseLunSpec(absl::string_view text, const std::vector<LunSpec>& taken) {
  bool lun_given = false;
  absl::StatusOr<LunSpec> spec = ParseOne(text, &lun_given);
  if (!spec.ok()) return spec.status();
  if (lun_given) {
    if (Taken(taken, spec->target, spec->lun)) {
      return Bad(absl::StrCat("target ", spec->target, " LUN ", spec->lun, " is given twice"));
    }
    return spec;
  }
  for (spec->lun = 0; spec->lun <= kMaxLun; ++spec->lun) {
    if (!Taken(taken, spec->target, spec->lun)) return spec;
  }
  return Bad(absl::StrCat("target ", spec->target, " has no free LUN"));
}

absl::StatusOr<std::vector<LunSpec>> ParseLunSpecs(absl::string_view text) {
  std::vector<LunSpec> specs;
  // LUNs given explicitly are placed first, so a spec without lun= never takes a number a
  // later spec names.
  std::vector<absl::string_view> texts = absl::StrSplit(text, ';', absl::SkipEmpty());
  for (size_t pass = 0; pass < 2; ++pass) {
    for (size_t i = 0; i < texts.size(); ++i) {
      bool lun_given = false;
      absl::StatusOr<LunSpec> parsed = ParseOne(texts[i], &lun_given);
      if (!parsed.ok()) return parsed.status();
      if (lun_given != (pass == 0)) continue;
      absl::StatusOr<LunSpec> spec = ParseLunSpec(texts[i], specs);
      if (!spec.ok()) return spec.status();
      specs.push_back(*std::move(spec));
    }
  }
  if (specs.empty()) return Bad("at least one LUN is required");
  return specs;
}

}  // namespace vhost::scsi

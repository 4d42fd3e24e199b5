#include "vhost-user-scsi/sense.h"

namespace vhost::scsi {

std::vector<uint8_t> EncodeSense(const Sense& sense, SenseFormat format) {
  if (format == SenseFormat::kDescriptor) {
    std::vector<uint8_t> data(kDescriptorSenseLength, 0);
    data[0] = 0x72;  // current error, descriptor format
    data[1] = sense.key & 0x0f;
    data[2] = sense.asc;
    data[3] = sense.ascq;
    data[7] = 0;  // additional sense length: no descriptors
    return data;
  }
  std::vector<uint8_t> data(kFixedSenseLength, 0);
  data[0] = 0x70;  // current error, fixed format; VALID clear: no INFORMATION field
  data[2] = sense.key & 0x0f;
  data[7] = kFixedSenseLength - 8;  // additional sense length
  data[12] = sense.asc;
  data[13] = sense.ascq;
  return data;
}

std::vector<uint8_t> EncodeSense(const Sense& sense, SenseFormat format, uint64_t information) {
  std::vector<uint8_t> data = EncodeSense(sense, format);
  if (format == SenseFormat::kDescriptor) {
    data[7] = kDescriptorSenseWithInformationLength - kDescriptorSenseLength;
    uint8_t descriptor[12] = {0x00, 0x0a, 0x80};  // information, additional length 10, VALID
    for (int i = 0; i < 8; ++i) descriptor[4 + i] = information >> (56 - 8 * i);
    data.insert(data.end(), descriptor, descriptor + sizeof(descriptor));
    return data;
  }
  if (information > 0xffffffffu) return data;
  data[0] |= 0x80;  // VALID
  for (int i = 0; i < 4; ++i) data[3 + i] = information >> (24 - 8 * i);
  return data;
}

}  // namespace vhost::scsi

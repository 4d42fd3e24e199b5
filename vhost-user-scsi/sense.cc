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

}  // namespace vhost::scsi

#include "vhost-user-i2c/host_adapter.h"

#include <fcntl.h>
#include <linux/i2c-dev.h>
#include <linux/i2c.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace vhost {
namespace {

constexpr size_t kMaxMessages = I2C_RDWR_IOCTL_MAX_MSGS;

absl::Status Errno(const std::string& what) { return absl::ErrnoToStatus(errno, what); }

}  // namespace

std::vector<unsigned long> HostAdapterIoctls() {
  return {I2C_FUNCS, I2C_RDWR, I2C_SLAVE, I2C_SMBUS};
}

absl::StatusOr<std::unique_ptr<HostAdapter>> HostAdapter::Open(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd) return Errno(absl::StrCat("open ", path));
  unsigned long funcs = 0;
  if (ioctl(fd.get(), I2C_FUNCS, &funcs) != 0) {
    return Errno(absl::StrCat(path, " is not an I2C adapter"));
  }
  if (!(funcs &
        (I2C_FUNC_I2C | I2C_FUNC_SMBUS_QUICK | I2C_FUNC_SMBUS_BYTE | I2C_FUNC_SMBUS_BYTE_DATA))) {
    return absl::FailedPreconditionError(absl::StrCat(path, " offers neither I2C nor SMBus"));
  }
  return std::unique_ptr<HostAdapter>(new HostAdapter(std::move(fd), path, funcs));
}

absl::Status HostAdapter::Transfer(absl::Span<I2cMessage> messages) {
  if (messages.empty()) return absl::OkStatus();
  std::lock_guard<std::mutex> lock(mu_);  // one transaction at a time, whichever guest
  if (funcs_ & I2C_FUNC_I2C) return TransferI2c(messages);
  return TransferSmbus(messages);
}

absl::Status HostAdapter::TransferI2c(absl::Span<I2cMessage> messages) {
  if (messages.size() > kMaxMessages) {
    return absl::InvalidArgumentError(absl::StrCat(messages.size(), " messages in a transaction"));
  }
  i2c_msg msgs[kMaxMessages];
  for (size_t i = 0; i < messages.size(); ++i) {
    msgs[i].addr = messages[i].addr;
    msgs[i].flags = messages[i].read ? I2C_M_RD : 0;
    msgs[i].len = static_cast<uint16_t>(messages[i].data.size());
    msgs[i].buf = messages[i].data.data();
  }
  i2c_rdwr_ioctl_data data{msgs, static_cast<uint32_t>(messages.size())};
  const int done = ioctl(fd_.get(), I2C_RDWR, &data);
  if (done < 0) return Errno(absl::StrCat(path_, ": I2C_RDWR"));
  // Some adapters (virtio-i2c among them) report a failed message by counting fewer.
  if (done != static_cast<int>(messages.size())) {
    return absl::UnavailableError(
        absl::StrCat(path_, ": ", done, " of ", messages.size(), " messages transferred"));
  }
  return absl::OkStatus();
}

absl::Status HostAdapter::TransferSmbus(absl::Span<I2cMessage> messages) {
  I2cMessage& first = messages[0];
  for (const I2cMessage& m : messages) {
    if (m.addr != first.addr) {
      return absl::UnimplementedError("SMBus transactions address one client");
    }
  }
  i2c_smbus_data data{};
  i2c_smbus_ioctl_data args{};
  args.data = &data;
  uint32_t needed = 0;
  std::vector<uint8_t>* read_into = nullptr;
  size_t read_len = 0;
  const size_t n0 = first.data.size();
  if (messages.size() == 1 && n0 == 0) {
    args.read_write = first.read ? I2C_SMBUS_READ : I2C_SMBUS_WRITE;
    args.size = I2C_SMBUS_QUICK;
    args.data = nullptr;
    needed = I2C_FUNC_SMBUS_QUICK;
  } else if (messages.size() == 1 && first.read && n0 == 1) {
    args.read_write = I2C_SMBUS_READ;
    args.size = I2C_SMBUS_BYTE;
    needed = I2C_FUNC_SMBUS_READ_BYTE;
    read_into = &first.data;
    read_len = 1;
  } else if (messages.size() == 1 && !first.read) {
    args.read_write = I2C_SMBUS_WRITE;
    args.command = first.data[0];
    if (n0 == 1) {
      args.size = I2C_SMBUS_BYTE;
      needed = I2C_FUNC_SMBUS_WRITE_BYTE;
    } else if (n0 == 2) {
      args.size = I2C_SMBUS_BYTE_DATA;
      data.byte = first.data[1];
      needed = I2C_FUNC_SMBUS_WRITE_BYTE_DATA;
    } else if (n0 == 3) {
      args.size = I2C_SMBUS_WORD_DATA;
      data.word = static_cast<uint16_t>(first.data[1] | first.data[2] << 8);
      needed = I2C_FUNC_SMBUS_WRITE_WORD_DATA;
    } else if (n0 - 1 <= I2C_SMBUS_BLOCK_MAX) {
      args.size = I2C_SMBUS_I2C_BLOCK_DATA;
      data.block[0] = static_cast<uint8_t>(n0 - 1);
      std::memcpy(&data.block[1], &first.data[1], n0 - 1);
      needed = I2C_FUNC_SMBUS_WRITE_I2C_BLOCK;
    }
  } else if (messages.size() == 2 && !first.read && n0 == 1 && messages[1].read) {
    const size_t n1 = messages[1].data.size();
    args.read_write = I2C_SMBUS_READ;
    args.command = first.data[0];
    read_into = &messages[1].data;
    read_len = n1;
    if (n1 == 1) {
      args.size = I2C_SMBUS_BYTE_DATA;
      needed = I2C_FUNC_SMBUS_READ_BYTE_DATA;
    } else if (n1 == 2) {
      args.size = I2C_SMBUS_WORD_DATA;
      needed = I2C_FUNC_SMBUS_READ_WORD_DATA;
    } else if (n1 >= 1 && n1 <= I2C_SMBUS_BLOCK_MAX) {
      args.size = I2C_SMBUS_I2C_BLOCK_DATA;
      data.block[0] = static_cast<uint8_t>(n1);
      needed = I2C_FUNC_SMBUS_READ_I2C_BLOCK;
    }
  }
  if (needed == 0 || (funcs_ & needed) != needed) {
    return absl::UnimplementedError(
        absl::StrCat(path_, " is SMBus-only and this transaction has no SMBus form it offers"));
  }
  if (ioctl(fd_.get(), I2C_SLAVE, static_cast<unsigned long>(first.addr)) != 0) {
    return Errno(absl::StrCat(path_, ": address 0x", absl::Hex(first.addr)));
  }
  if (ioctl(fd_.get(), I2C_SMBUS, &args) != 0) return Errno(absl::StrCat(path_, ": I2C_SMBUS"));
  if (read_into != nullptr) {
    if (args.size == I2C_SMBUS_BYTE || args.size == I2C_SMBUS_BYTE_DATA) {
      (*read_into)[0] = data.byte;
    } else if (args.size == I2C_SMBUS_WORD_DATA) {
      (*read_into)[0] = data.word & 0xff;
      (*read_into)[1] = data.word >> 8;
    } else {
      std::memcpy(read_into->data(), &data.block[1], read_len);
    }
  }
  return absl::OkStatus();
}

}  // namespace vhost

#include "tests/frontend/fuse_client.h"

#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"

namespace vhost::frontend {
namespace {

template <typename T>
std::string Bytes(const T& v) {
  return std::string(reinterpret_cast<const char*>(&v), sizeof(v));
}
std::string Name(const std::string& n) { return n + std::string(1, '\0'); }
template <typename T>
T As(const std::string& body) {
  T v{};
  std::memcpy(&v, body.data(), std::min(sizeof(T), body.size()));
  return v;
}

}  // namespace

absl::StatusOr<std::unique_ptr<FuseClient>> FuseClient::Start(const std::string& socket,
                                                              bool busy_poll,
                                                              uint64_t protocol_features,
                                                              uint32_t minor) {
  std::unique_ptr<FuseClient> c(new FuseClient());
  c->busy_poll_ = busy_poll;
  DeviceOptions options;
  options.protocol_features |= protocol_features;
  options.queue_sizes = {128, 128};
  ASSIGN_OR_RETURN(c->device_, DeviceConnection::Open(socket, options));
  c->frontend_ = c->device_->frontend();
  c->ram_ = c->device_->ram();
  c->hiprio_ = c->device_->queue(0);
  c->requests_ = c->device_->queue(1);
  ASSIGN_OR_RETURN(c->in_gpa_, c->ram_->Allocate(kMaxData + 64 * 1024, 4096, &c->in_));
  ASSIGN_OR_RETURN(c->out_gpa_, c->ram_->Allocate(kMaxData + 64 * 1024, 4096, &c->out_));
  fuse_init_in init{};
  init.major = FUSE_KERNEL_VERSION;
  init.minor = minor;
  init.max_readahead = 1 << 17;
  init.flags = FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_DO_READDIRPLUS;
  if (minor >= 28) init.flags |= FUSE_MAX_PAGES;
  // 7.36 added flags2 and reserved words, and FUSE_INIT_EXT to say they are read.
  if (minor >= 36) init.flags |= FUSE_INIT_EXT;
  const size_t size = minor >= 36 ? sizeof(init) : offsetof(fuse_init_in, flags2);
  ASSIGN_OR_RETURN(std::string reply,
                   c->Call(FUSE_INIT, 0, Bytes(init).substr(0, size), "", sizeof(fuse_init_out)));
  c->init_ = As<fuse_init_out>(reply);
  return c;
}

absl::Status FuseClient::WhileStopped(const std::function<absl::Status(Frontend&)>& fn) {
  absl::Status status = device_->RestartQueues([&] { return fn(*frontend_); });
  // The queues were replaced (or, on an error, some of them).
  hiprio_ = device_->queue(0);
  requests_ = device_->queue(1);
  return status;
}

absl::StatusOr<std::string> FuseClient::Submit(FrontendQueue& queue, const std::string& request,
                                               uint32_t room, bool reply) {
  if (request.size() > kMaxData + 64 * 1024 || room > kMaxData + 64 * 1024) {
    return absl::InvalidArgumentError("request too large");
  }
  std::memcpy(in_, request.data(), request.size());
  std::vector<Buffer> writable;
  if (reply) writable.push_back({out_gpa_, static_cast<uint32_t>(sizeof(fuse_out_header) + room)});
  RETURN_IF_ERROR(
      queue.ring().AddChain({{in_gpa_, static_cast<uint32_t>(request.size())}}, writable).status());
  RETURN_IF_ERROR(queue.Submit().status());
  ASSIGN_OR_RETURN(UsedElement used, queue.WaitForUsed(absl::Seconds(30), busy_poll_));
  return std::string(reinterpret_cast<char*>(out_),
                     std::min<uint32_t>(used.len, sizeof(fuse_out_header) + room));
}

absl::StatusOr<fuse_out_header> FuseClient::CallRaw(const std::string& request, uint32_t room) {
  ASSIGN_OR_RETURN(std::string out, Submit(*requests_, request, room, true));
  if (out.size() < sizeof(fuse_out_header)) return absl::DataLossError("no reply header");
  return As<fuse_out_header>(out);
}

absl::StatusOr<std::string> FuseClient::Call(uint32_t opcode, uint64_t nodeid,
                                             const std::string& args, const std::string& data,
                                             uint32_t room) {
  fuse_in_header in{};
  in.opcode = opcode;
  in.unique = ++unique_;
  in.nodeid = nodeid;
  in.uid = getuid();
  in.gid = getgid();
  in.pid = 1;
  in.len = static_cast<uint32_t>(sizeof(in) + args.size() + data.size());
  std::string request = Bytes(in) + args + data;
  ASSIGN_OR_RETURN(std::string out, Submit(*requests_, request, room, true));
  if (out.size() < sizeof(fuse_out_header)) return absl::DataLossError("no reply header");
  const auto header = As<fuse_out_header>(out);
  if (header.unique != in.unique) return absl::DataLossError("reply for another request");
  if (header.error != 0) {
    return absl::ErrnoToStatus(-header.error, absl::StrCat("FUSE opcode ", opcode));
  }
  return out.substr(sizeof(fuse_out_header), header.len - sizeof(fuse_out_header));
}

absl::StatusOr<fuse_entry_out> FuseClient::Lookup(uint64_t parent, const std::string& name) {
  ASSIGN_OR_RETURN(std::string body, Call(FUSE_LOOKUP, parent, Name(name)));
  return As<fuse_entry_out>(body);
}

absl::StatusOr<std::pair<uint64_t, uint64_t>> FuseClient::Create(uint64_t parent,
                                                                 const std::string& name,
                                                                 int flags) {
  fuse_create_in in{};
  in.flags = flags;
  in.mode = 0100644;
  ASSIGN_OR_RETURN(std::string body, Call(FUSE_CREATE, parent, Bytes(in) + Name(name)));
  const auto entry = As<fuse_entry_out>(body);
  const auto open = As<fuse_open_out>(body.substr(std::min(body.size(), sizeof(fuse_entry_out))));
  return std::make_pair(entry.nodeid, open.fh);
}

absl::StatusOr<uint64_t> FuseClient::Open(uint64_t nodeid, int flags) {
  fuse_open_in in{};
  in.flags = flags;
  ASSIGN_OR_RETURN(std::string body, Call(FUSE_OPEN, nodeid, Bytes(in)));
  return As<fuse_open_out>(body).fh;
}

absl::Status FuseClient::Release(uint64_t nodeid, uint64_t fh) {
  fuse_release_in in{};
  in.fh = fh;
  return Call(FUSE_RELEASE, nodeid, Bytes(in)).status();
}

absl::StatusOr<uint32_t> FuseClient::Write(uint64_t nodeid, uint64_t fh, uint64_t offset,
                                           const std::string& data) {
  fuse_write_in in{};
  in.fh = fh;
  in.offset = offset;
  in.size = static_cast<uint32_t>(data.size());
  ASSIGN_OR_RETURN(std::string body, Call(FUSE_WRITE, nodeid, Bytes(in), data));
  return As<fuse_write_out>(body).size;
}

absl::StatusOr<std::string> FuseClient::Read(uint64_t nodeid, uint64_t fh, uint64_t offset,
                                             uint32_t size) {
  fuse_read_in in{};
  in.fh = fh;
  in.offset = offset;
  in.size = size;
  return Call(FUSE_READ, nodeid, Bytes(in), "", size);
}

absl::StatusOr<fuse_attr> FuseClient::GetAttr(uint64_t nodeid) {
  ASSIGN_OR_RETURN(std::string body, Call(FUSE_GETATTR, nodeid, Bytes(fuse_getattr_in{})));
  return As<fuse_attr_out>(body).attr;
}

fuse_in_header FuseClient::Header(uint32_t opcode, uint64_t nodeid, uint32_t len) {
  fuse_in_header in{};
  in.opcode = opcode;
  in.unique = ++unique_;
  in.nodeid = nodeid;
  in.uid = getuid();
  in.gid = getgid();
  in.pid = 1;
  in.len = len;
  return in;
}

absl::StatusOr<uint32_t> FuseClient::SubmitInPlace(uint32_t len, uint32_t room) {
  RETURN_IF_ERROR(requests_->ring()
                      .AddChain({{in_gpa_, len}},
                                {{out_gpa_, static_cast<uint32_t>(sizeof(fuse_out_header) + room)}})
                      .status());
  RETURN_IF_ERROR(requests_->Submit().status());
  ASSIGN_OR_RETURN(UsedElement used, requests_->WaitForUsed(absl::Seconds(30), busy_poll_));
  fuse_out_header out;
  std::memcpy(&out, out_, sizeof(out));
  if (used.len < sizeof(out)) return absl::DataLossError("no reply header");
  if (out.error != 0) return absl::ErrnoToStatus(-out.error, "FUSE request");
  return out.len - static_cast<uint32_t>(sizeof(out));
}

absl::StatusOr<uint32_t> FuseClient::WriteInPlace(uint64_t nodeid, uint64_t fh, uint64_t offset,
                                                  uint32_t size) {
  if (size > kMaxData) return absl::InvalidArgumentError("too large");
  const uint32_t len = sizeof(fuse_in_header) + sizeof(fuse_write_in) + size;
  const fuse_in_header in = Header(FUSE_WRITE, nodeid, len);
  fuse_write_in write{};
  write.fh = fh;
  write.offset = offset;
  write.size = size;
  std::memcpy(in_, &in, sizeof(in));
  std::memcpy(in_ + sizeof(in), &write, sizeof(write));
  ASSIGN_OR_RETURN(uint32_t body, SubmitInPlace(len, sizeof(fuse_write_out)));
  if (body < sizeof(fuse_write_out)) return absl::DataLossError("short write reply");
  fuse_write_out out;
  std::memcpy(&out, out_ + sizeof(fuse_out_header), sizeof(out));
  return out.size;
}

absl::StatusOr<uint32_t> FuseClient::ReadInPlace(uint64_t nodeid, uint64_t fh, uint64_t offset,
                                                 uint32_t size) {
  const uint32_t len = sizeof(fuse_in_header) + sizeof(fuse_read_in);
  const fuse_in_header in = Header(FUSE_READ, nodeid, len);
  fuse_read_in read{};
  read.fh = fh;
  read.offset = offset;
  read.size = size;
  std::memcpy(in_, &in, sizeof(in));
  std::memcpy(in_ + sizeof(in), &read, sizeof(read));
  return SubmitInPlace(len, size);
}

absl::Status FuseClient::Forget(uint64_t nodeid, uint64_t nlookup) {
  fuse_in_header in{};
  in.opcode = FUSE_FORGET;
  in.unique = ++unique_;
  in.nodeid = nodeid;
  fuse_forget_in forget{};
  forget.nlookup = nlookup;
  in.len = sizeof(in) + sizeof(forget);
  return Submit(*hiprio_, Bytes(in) + Bytes(forget), 0, false).status();
}

}  // namespace vhost::frontend

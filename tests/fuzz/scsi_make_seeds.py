#!/usr/bin/env python3
"""Writes the seed corpora of the SCSI fuzzers (tests/fuzz/corpus/scsi_lun_fuzz/ and
corpus/scsi_device_fuzz/): sessions an initiator would run (the command set, persistent
reservations across nexuses and a restart, task management with I/O in flight), in the input
formats scsi_lun_fuzz.cc and scsi_device_fuzz.cc read, so mutations start deep in the code."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

# ---- scsi_lun_fuzz: config, blocks, then ops (see Fuzz() in scsi_lun_fuzz.cc)

RO, DISCARD, PR, STORE, BS4K, DSENSE, STATE, IDENTITY = (1 << i for i in range(8))


def lun_cmd(cdb, data_out=b"", data_in=0, nexus=0, asynchronous=False, fail=False):
    op = 0x60 | nexus | (4 if asynchronous else 0) | (0x10 if fail else 0)
    cdb = bytes(cdb)
    assert len(data_out) <= 0x1FFF and data_in <= 0x7FFF
    return (bytes([op, len(cdb)]) + cdb + struct.pack("<H", len(data_out)) + data_out
            + struct.pack("<H", data_in))


def be16(v):
    return list(struct.pack(">H", v))


def be32(v):
    return list(struct.pack(">I", v))


def be64(v):
    return list(struct.pack(">Q", v))


def rw10(opcode, lba, blocks, flags=0):
    return [opcode, flags] + be32(lba) + [0] + be16(blocks) + [0]


def rw16(opcode, lba, blocks, flags=0):
    return [opcode, flags] + be64(lba) + be32(blocks) + [0, 0]


def pr_out(action, key, sa_key=0, rtype=0, aptpl=False, nexus=0):
    params = struct.pack(">QQI", key, sa_key, 0) + bytes([1 if aptpl else 0, 0, 0, 0])
    cdb = [0x5F, action, rtype, 0, 0] + be32(len(params)) + [0]
    return lun_cmd(cdb, params, nexus=nexus)


def pr_in(action, nexus=0):
    return lun_cmd([0x5E, action, 0, 0, 0, 0, 0] + be16(512) + [0], data_in=512, nexus=nexus)


def command_set():
    s = bytes([DISCARD | IDENTITY, 64])
    s += lun_cmd([0x00, 0, 0, 0, 0, 0])  # TEST UNIT READY
    s += lun_cmd([0x12, 0, 0, 0, 96, 0], data_in=96)  # INQUIRY
    for page in (0x00, 0x80, 0x83, 0xB0, 0xB1, 0xB2):
        s += lun_cmd([0x12, 1, page, 0, 255, 0], data_in=255)
    s += lun_cmd([0x25] + [0] * 9, data_in=8)  # READ CAPACITY(10)
    s += lun_cmd([0x9E, 0x10] + [0] * 8 + be32(32) + [0, 0], data_in=32)
    s += lun_cmd([0x1A, 0, 0x3F, 0, 255, 0], data_in=255)  # MODE SENSE(6), all pages
    s += lun_cmd([0x5A, 0x08, 0x08, 0, 0, 0, 0] + be16(255) + [0], data_in=255)
    caching = bytes([0x08, 18] + [0] * 18)  # WCE off
    s += lun_cmd([0x15, 0x10, 0, 0, 4 + len(caching), 0], bytes(4) + caching)
    control = bytes([0x0A, 10, 0x04, 0x10, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0])  # D_SENSE on
    s += lun_cmd([0x55, 0x10, 0, 0, 0, 0, 0] + be16(8 + len(control)) + [0],
                 bytes(8) + control)
    s += lun_cmd([0xA3, 0x0C, 0, 0, 0, 0] + be32(1024) + [0, 0], data_in=1024)
    s += lun_cmd([0x03, 0, 0, 0, 18, 0], data_in=18)  # REQUEST SENSE
    block = bytes(range(256)) * 2
    s += lun_cmd(rw10(0x2A, 3, 1), block)  # WRITE(10)
    s += lun_cmd(rw10(0x2A, 4, 1, 0x08), block, asynchronous=True)  # FUA, by reference
    s += lun_cmd(rw10(0x28, 3, 2), data_in=1024)
    s += lun_cmd(rw10(0x28, 3, 2), data_in=1024, asynchronous=True)
    s += lun_cmd([0x08, 0, 0, 3, 1, 0], data_in=512)  # READ(6)
    s += lun_cmd([0xA8, 0] + be32(3) + be32(1) + [0, 0], data_in=512)  # READ(12)
    s += lun_cmd(rw16(0x88, 3, 1), data_in=512, asynchronous=True)
    s += lun_cmd(rw16(0x8A, 60, 4), bytes(1000), asynchronous=True)  # buffers too small
    s += lun_cmd(rw10(0x28, 63, 2), data_in=1024)  # beyond the capacity
    s += lun_cmd(rw10(0x2F, 3, 1, 0x02), block)  # VERIFY with BYTCHK
    s += lun_cmd(rw16(0x8F, 0, 64))  # VERIFY(16), the medium
    caw = [0x89, 0] + be64(3) + [0, 0, 0, 1, 0, 0]
    s += lun_cmd(caw, block + bytes(512))  # COMPARE AND WRITE
    s += lun_cmd(caw, block + bytes(512))  # now miscompares
    s += lun_cmd(rw10(0x35, 0, 0), asynchronous=True)  # SYNCHRONIZE CACHE
    s += lun_cmd(rw16(0x91, 0, 8), fail=True, asynchronous=True)
    unmap = struct.pack(">HH4x", 22, 16) + struct.pack(">QI4x", 8, 8)
    s += lun_cmd([0x42, 0, 0, 0, 0, 0, 0] + be16(len(unmap)) + [0], unmap)
    s += lun_cmd(rw10(0x41, 16, 8, 0x08), bytes(512))  # WRITE SAME(10) with UNMAP
    s += lun_cmd(rw16(0x93, 24, 4, 0x01))  # WRITE SAME(16), NDOB
    s += lun_cmd(rw16(0x93, 28, 2), block, fail=True)
    s += lun_cmd([0x1B, 0, 0, 0, 0x02, 0])  # START STOP UNIT: eject
    s += lun_cmd([0x28, 0, 0])  # cut short
    s += lun_cmd([0x7F] + [0] * 9)  # variable length: unsupported
    return s


def reservations():
    s = bytes([PR | STORE | DISCARD, 32])
    s += pr_out(0x00, 0, 0x11, nexus=1)  # REGISTER
    s += pr_out(0x00, 0, 0x22, nexus=2)
    s += pr_out(0x01, 0x11, rtype=0x01, nexus=1)  # RESERVE, Write Exclusive
    s += lun_cmd(rw10(0x2A, 0, 1), bytes(512), nexus=2)  # RESERVATION CONFLICT
    s += lun_cmd(rw10(0x28, 0, 1), data_in=512, nexus=2)
    for action in range(4):
        s += pr_in(action, nexus=2)
    s += pr_out(0x00, 0x22, 0x23, aptpl=True, nexus=2)  # re-register, persist
    s += pr_out(0x05, 0x23, 0x11, rtype=0x03, nexus=2)  # PREEMPT AND ABORT
    s += lun_cmd([0x00] * 6, nexus=1)  # REGISTRATIONS PREEMPTED
    s += lun_cmd([0x03, 0, 0, 0, 18, 0], data_in=18, nexus=1)
    s += bytes([0x40])  # restart from the store
    s += pr_in(0x01, nexus=3)
    s += pr_out(0x06, 0, 0x33, nexus=3)  # REGISTER AND IGNORE EXISTING KEY
    s += pr_out(0x04, 0x33, 0x23, rtype=0x05, nexus=3)  # PREEMPT
    s += pr_out(0x02, 0x33, rtype=0x05, nexus=3)  # RELEASE
    s += bytes([0x41])  # restart, later saves fail
    s += pr_out(0x00, 0x33, 0x34, aptpl=True, nexus=3)
    s += pr_out(0x03, 0x33, nexus=3)  # CLEAR
    s += pr_in(0x00)
    return s


def read_only():
    s = bytes([RO | DISCARD | DSENSE | BS4K, 16])
    s += lun_cmd(rw10(0x2A, 0, 1), bytes(4096))
    s += lun_cmd(rw16(0x93, 0, 1, 0x01))
    s += lun_cmd([0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0], bytes(24))
    s += bytes([0x01])  # LOGICAL UNIT RESET's unit attention
    s += lun_cmd([0x12, 0, 0, 0, 36, 0], data_in=36)
    s += lun_cmd([0x00] * 6)
    s += bytes([0x20, 40])  # capacity changed
    s += lun_cmd([0x25] + [0] * 9, data_in=8)
    s += lun_cmd(rw10(0x28, 39, 1), data_in=4096, asynchronous=True)
    s += lun_cmd(rw10(0x2F, 0, 1, 0x02), bytes(4096))
    return s


def state_file():
    # A saved APTPL state (PersistentReservations::Serialize): generation 7, nexus 1 holding a
    # Write Exclusive reservation, nexuses 1 and 2 registered.
    state = b"VSPR" + bytes([1, 1]) + struct.pack(">IBBQI", 7, 1, 0x01, 1, 2)
    state += struct.pack(">QQ", 1, 0x11) + struct.pack(">QQ", 2, 0x22)
    s = bytes([PR | STORE | STATE, 8, len(state)]) + state
    s += pr_in(0x00) + pr_in(0x01) + pr_in(0x03)
    s += lun_cmd(rw10(0x28, 0, 1), data_in=512, nexus=1)
    return s


# ---- scsi_device_fuzz: config, then ops (see Fuzz() in scsi_device_fuzz.cc)

TWO_QUEUES, HOLD, CHANGE, HOTPLUG = 1, 2, 4, 8
LUN0, LUN1_RO, LUN300, NULL_TARGET, NO_LUN, NO_TARGET, DEEP, WLUN = range(8)
RAW_LUN = 0x80  # request flag: the 8 LUN bytes follow
# Task management functions (VIRTIO_SCSI_T_TMF_*).
(ABORT_TASK, ABORT_TASK_SET, CLEAR_ACA, CLEAR_TASK_SET, IT_NEXUS_RESET, LU_RESET, QUERY_TASK,
 QUERY_TASK_SET) = range(8)


def chain(writable, cuts=None):
    """The AddChain bytes: with readable bytes, the lengths of every readable descriptor but
    the last (which takes the rest); then the writable descriptors' sizes."""
    out = b""
    if cuts is not None:
        out += bytes([len(cuts)]) + bytes(c - 1 for c in cuts)
    out += bytes([len(writable)]) + b"".join(struct.pack("<H", w) for w in writable)
    return out


def request(lun, cdb, tag=0, data_out=b"", data_in=96, queue=0, cut=None):
    op = (queue << 3) | 0
    f = 0x01 | (lun << 1) | (0x20 if cut is not None else 0)  # structured, LUN, cut
    body = bytes([f, tag, 0, len(cdb)]) + bytes(cdb)
    if cut is not None:
        body += bytes([cut])
    assert len(data_out) < 600
    body += struct.pack("<H", len(data_out)) + data_out
    # Header in one descriptor, data-out in another; response header plus data-in.
    cuts = [51] if data_out and cut is None else []
    return bytes([op]) + body + chain([108 + data_in], cuts)


def tmf(lun, subtype, tag=0, room=1):
    f = 0 | (lun << 2)
    return bytes([3, f, subtype, tag]) + chain([room], [])


def an(lun, subscribe=False, room=8):
    f = 2 | (lun << 2) | (0x80 if subscribe else 0)
    return bytes([3, f]) + struct.pack("<I", 0xFF) + chain([room], [])


def event_buffer(room=16):
    return bytes([4]) + chain([room])


def device_plain():
    s = bytes([CHANGE | HOTPLUG])
    s += event_buffer() + event_buffer()
    s += request(LUN0, [0x12, 0, 0, 0, 36, 0])
    s += request(LUN0, [0xA0, 0, 2, 0, 0, 0] + be32(256) + [0, 0], data_in=256)
    s += request(WLUN, [0xA0, 0, 1, 0, 0, 0] + be32(256) + [0, 0], data_in=256)
    s += request(LUN0, rw10(0x2A, 2, 1), data_out=bytes(range(256)) * 2, data_in=0)
    s += request(LUN0, rw10(0x28, 2, 1), data_in=512)
    s += request(LUN1_RO, rw10(0x2A, 0, 1), data_out=bytes(512), data_in=0)
    s += request(LUN300, [0x9E, 0x10] + [0] * 8 + be32(32) + [0, 0], data_in=32)
    s += request(NULL_TARGET, rw10(0x28, 0, 8), data_in=4096)
    s += request(NO_LUN, [0x00] * 6)
    s += request(NO_LUN, [0x12, 0, 0, 0, 36, 0])
    s += request(NO_LUN, [0x03, 0, 0, 0, 18, 0])
    s += request(NO_TARGET, [0x00] * 6)
    s += request(DEEP, [0x00] * 6)
    s += request(LUN0, [0x28, 0, 0, 0], cut=20)  # header cut in the CDB
    s += request(LUN0, [0x00] * 6, cut=10)  # cut before the CDB
    s += bytes([7])  # disk 0 grew: an event
    s += request(LUN0, [0x00] * 6)  # CAPACITY DATA HAS CHANGED
    s += an(LUN0) + an(NO_TARGET, subscribe=True)
    s += tmf(LUN0, ABORT_TASK, tag=9) + tmf(NO_LUN, ABORT_TASK_SET) + tmf(LUN0, CLEAR_ACA)
    return s


def device_held():
    s = bytes([TWO_QUEUES | HOLD | CHANGE])
    s += request(LUN0, rw10(0x28, 0, 4), tag=3, data_in=2048)
    s += request(LUN0, rw10(0x2A, 8, 1), tag=4, data_out=bytes(512), data_in=0, queue=1)
    s += request(LUN300, rw16(0x91, 0, 0), tag=5)
    s += tmf(LUN0, QUERY_TASK, tag=3)
    s += tmf(LUN0, QUERY_TASK_SET)
    s += tmf(LUN0, ABORT_TASK, tag=3)  # waits for the read
    s += tmf(LUN0, LU_RESET)  # waits
    s += tmf(LUN300, IT_NEXUS_RESET)  # waits for the flush
    s += bytes([5])  # release
    s += request(LUN0, [0x00] * 6)  # the reset's unit attention
    s += request(LUN0, rw10(0x28, 0, 1), tag=6, data_in=512)
    s += bytes([5 | (1 << 3)])  # release with an error
    s += request(LUN0, rw10(0x28, 0, 1), tag=7, data_in=512)
    s += tmf(LUN0, ABORT_TASK_SET)
    s += bytes([5 | (2 << 3)])  # release, short
    s += bytes([6])  # stop holding
    s += request(LUN0, rw10(0x28, 0, 1), tag=1, data_in=512, queue=1)
    return s


def device_hostile():
    s = bytes([HOLD | 0x10])  # a ring of 8
    for i in range(10):
        s += request(LUN0, rw10(0x28, i, 1), tag=i % 8, data_in=512)
    s += tmf(LUN0, CLEAR_TASK_SET)  # with the ring full
    s += bytes([0, 0, 80]) + bytes(range(80)) + chain([8, 0, 200], [30, 50])  # raw bytes
    s += bytes([0, 0x01, 0, 0, 10]) + bytes(10) + struct.pack("<H", 0) + chain([0], [])
    s += request(LUN0, rw10(0x28, 0, 64), data_in=512)  # transfer beyond the buffers
    s += tmf(LUN0, ABORT_TASK, room=0)  # no room for the response
    s += bytes([3, 0x40, 0, 0, 10]) + chain([1], [])  # TMF cut short
    s += bytes([3, 3, 6]) + b"\x07\x00\x00\x00\x00\x00" + chain([4], [])  # unknown type
    s += event_buffer(4)  # too small
    s += bytes([5])
    return s


def host(action, *args):
    """Op 7: the host. action 0-3 grows image args[0]; 4 removes hotplug address args[0]; 5 adds
    a unit there (args[0] | 8: 4 KiB blocks | 16: read-only); 6 sends a control-socket line;
    7 reloads."""
    out = bytes([7 | (action << 3)])
    if action == 6:
        line = args[0].encode()
        return out + bytes([len(line)]) + line
    return out + bytes(args)


def device_hotplug():
    s = bytes([HOLD | CHANGE | HOTPLUG])
    s += event_buffer() + event_buffer() + event_buffer()
    s += request(LUN0, rw10(0x28, 0, 2), tag=1, data_in=1024)  # held
    s += tmf(LUN0, LU_RESET)  # waits for it
    s += host(4, 0)  # target 0 LUN 0 removed with its read in flight
    s += request(LUN0, [0x00] * 6)  # LUN not supported
    s += request(LUN1_RO, [0x00] * 6)  # REPORTED LUNS DATA HAS CHANGED
    s += bytes([5])  # the read completes on the removed unit
    s += host(5, 0)  # added back
    s += request(LUN0, rw10(0x28, 0, 1), data_in=512)
    s += host(5, 6 | 8)  # target 5 LUN 7, a new target, 4 KiB blocks
    s += request(LUN0, [0xA0, 0, 0, 0, 0, 0] + be32(64) + [0, 0], data_in=64)
    s += host(6, "add null=1M,target=5,lun=8")
    s += host(6, "remove target=5,lun=7")
    s += host(6, "list")
    s += host(6, "add file=/nonexistent")  # no descriptor sent
    s += host(0, 0) + host(7)  # image 0 grew
    s += event_buffer() + event_buffer()
    s += bytes([6]) + request(LUN0, [0x00] * 6)
    return s


def main():
    seeds = {
        "scsi_lun_fuzz": {
            "command_set": command_set(),
            "reservations": reservations(),
            "read_only": read_only(),
            "state_file": state_file(),
        },
        "scsi_device_fuzz": {
            "plain": device_plain(),
            "held": device_held(),
            "hostile": device_hostile(),
            "hotplug": device_hotplug(),
        },
    }
    for target, files in seeds.items():
        d = os.path.join(HERE, "corpus", target)
        os.makedirs(d, exist_ok=True)
        for name, data in files.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()

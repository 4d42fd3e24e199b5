#!/usr/bin/env python3
"""Writes the seed corpora (tests/fuzz/corpus/<target>/) that fuzz_test_main and libFuzzer start
from: well-formed sessions and rings, so mutations start deep in the code."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def msg(request, payload=b"", need_reply=True):
    return struct.pack("<BBH", request, 8 if need_reply else 0, len(payload)) + payload


def session(features, packed=False):
    uva = 0x10000000
    out = msg(3) + msg(1) + msg(15)
    out += msg(16, struct.pack("<Q", (1 << 0) | (1 << 3) | (1 << 5) | (1 << 9) | (1 << 15) | (1 << 16)))
    out += msg(2, struct.pack("<Q", features))
    out += msg(5, struct.pack("<II", 1, 0) + struct.pack("<QQQQ", 0, 1 << 20, uva, 0))
    for q in (0, 1):
        base = 0x10000 * (q + 1)
        out += msg(8, struct.pack("<II", q, 16))
        out += msg(9, struct.pack("<IIQQQQ", q, 0, uva + base, uva + base + 0x2000,
                                  uva + base + 0x1000, 0))
        out += msg(10, struct.pack("<II", q, 0x80008000 if packed else 0))
        out += msg(13, struct.pack("<Q", q)) + msg(14, struct.pack("<Q", q))
        out += msg(12, struct.pack("<Q", q)) + msg(18, struct.pack("<II", q, 1))
    out += msg(24, struct.pack("<III", 0, 16, 0) + bytes(16))
    out += msg(25, struct.pack("<III", 4, 4, 0) + bytes(4))
    out += msg(11, struct.pack("<II", 0, 0))
    out += msg(37, struct.pack("<Q", 0) + struct.pack("<QQQQ", 1 << 20, 1 << 20, uva + (1 << 20), 0))
    out += msg(38, struct.pack("<Q", 0) + struct.pack("<QQQQ", 1 << 20, 1 << 20, uva + (1 << 20), 0))
    out += msg(39, struct.pack("<Q", 0xF)) + msg(40) + msg(36) + msg(17) + msg(21) + msg(34)
    return out


def split_ring():
    header = struct.pack("<BB", 2 | 4, 3)  # EVENT_IDX | INDIRECT, size 8
    header += struct.pack("<HHHI", 0x0000, 0x1000, 0x2000, 0)
    mem = bytearray(0x9000)
    descs = [(0x4000, 16, 1, 1), (0x5000, 32, 2, 0), (0x8000, 32, 4, 0), (0x6000, 8, 2, 0)]
    for i, (addr, length, flags, nxt) in enumerate(descs):
        struct.pack_into("<QIHH", mem, 16 * i, addr, length, flags, nxt)
    struct.pack_into("<HH3H", mem, 0x1000, 0, 3, 0, 2, 3)  # avail: idx 3, heads 0, 2, 3
    struct.pack_into("<QIHH", mem, 0x8000, 0x4100, 16, 1, 1)  # indirect: readable then writable
    struct.pack_into("<QIHH", mem, 0x8010, 0x4200, 64, 2, 0)
    return header + bytes(mem)


def packed_ring():
    header = struct.pack("<BB", 1 | 2 | 4, 3)  # packed, EVENT_IDX, INDIRECT; size 8
    header += struct.pack("<HHHI", 0x0000, 0x1000, 0x2000, 0x80008000)
    mem = bytearray(0x9000)
    avail = 1 << 7  # AVAIL bit at wrap counter 1
    struct.pack_into("<QIHH", mem, 0, 0x4000, 16, 1, 0, )  # addr, len, id, flags (id first!)
    descs = [(0x4000, 16, 5, avail | 1), (0x5000, 32, 5, avail | 2), (0x8000, 32, 6, avail | 4)]
    for i, (addr, length, buf_id, flags) in enumerate(descs):
        struct.pack_into("<QIHH", mem, 16 * i, addr, length, buf_id, flags)
    struct.pack_into("<QIHH", mem, 0x8000, 0x4100, 16, 0, 0)
    struct.pack_into("<QIHH", mem, 0x8010, 0x4200, 64, 0, 2)
    return header + bytes(mem)


def main():
    seeds = {
        "message_fuzz": {
            "split_session": session((1 << 32) | (1 << 30) | (1 << 29) | (1 << 28)),
            "packed_session": session((1 << 32) | (1 << 30) | (1 << 34), packed=True),
            "no_protocol_features": session(1 << 32),
        },
        "virtqueue_fuzz": {"split_ring": split_ring(), "packed_ring": packed_ring()},
    }
    for target, files in seeds.items():
        d = os.path.join(HERE, "corpus", target)
        os.makedirs(d, exist_ok=True)
        for name, data in files.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes the seed corpus of gpu_device_fuzz (tests/fuzz/corpus/gpu_device_fuzz/): sessions a
virtio-gpu driver runs (display info, EDIDs, resources with backing, transfers, scanouts, flushes,
cursors) and the hostile variants around them (entries across and outside guest RAM, caps, cut
and split requests, small response buffers, batches, sink swaps, resets), in the input format
gpu_device_fuzz.cc reads (see Harness::Step there), so mutations start deep in the device.
Also the seeds of gpu_device_3d_fuzz (tests/fuzz/corpus/gpu_device_3d_fuzz/): the device with a
renderer, driven as Mesa's virgl driver does (contexts, 3D resources, submits, transfers, fences,
read-back scanouts and cursors, capsets) and around it (ids in both halves, refusals before the
renderer, the renderer failing, fences signalled a few at a time, memory tables replaced). Other
files in that folder are kept: regression-* (inputs that once crashed it) and grown-* (the 20
largest of a 330 s libFuzzer run's corpus)."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

# Mirrors gpu_device_fuzz.cc.
DATA_SIZE = 3 << 20
FORMATS = [1, 2, 3, 4, 67, 68, 121, 134]  # kFormats, by index
OTHER = [0x108, 0x109, 0x10B, 0x10C, 0x10D, 0x200, 0x201, 0x202, 0x203, 0x204, 0x205, 0x206,
         0x207, 0x208, 0x209, 0x300, 0x301, 0x1100]  # kOtherCommands
FENCE, RING_IDX = 1, 2


def u8(v):
    return struct.pack("<B", v)


def u16(v):
    return struct.pack("<H", v)


def u32(v):
    return struct.pack("<I", v)


def u64(v):
    return struct.pack("<Q", v)


def config(outputs=1, sink="a", edid=True, big=False):
    """The first byte: outputs (1..4, or 16), the first sink, F_EDID, the limits profile."""
    c = 0x40 if outputs == 16 else outputs - 1
    c |= {"a": 0, "b": 1, None: 2}[sink] << 2
    c |= 0 if edid else 0x10
    c |= 0x20 if big else 0
    return u8(c)


def header(fence=None, ring_idx=None):
    if fence is None:
        return u8(0)
    if ring_idx is None:
        return u8(0x80) + u32(fence) + u8(0)
    return u8(0xE0) + u32(fence) + u8(ring_idx)


def res(rid):
    if rid == 0:
        return u8(0xE8)
    if 1 <= rid <= 8:
        return u8(rid - 1)
    return u8(0xF4) + u32(rid)


def scanout(sid, outputs=1):
    if sid < outputs:
        return u8(sid)
    if sid == outputs:
        return u8(0xF0)
    return u8(0xF8) + u32(sid)


def rect(r=None):
    """None: the whole resource; (x, y, w, h) inside it; ("raw", x, y, w, h) as given."""
    if r is None:
        return u8(0)
    if r[0] == "raw":
        return u8(0xE0) + b"".join(u32(v) for v in r[1:])
    x, y, w, h = r
    return u8(0x60) + u16(x) + u16(y) + u16(w - 1) + u16(h - 1)


def chain(cut=None, splits=(), room="fit", room_split=None):
    """How the request reaches the device: cut to `cut` bytes, split after `splits` (relative
    lengths of all pieces but the last), and the response buffer: "fit", 0, or a byte count,
    split after `room_split` bytes."""
    out = u8(0) if cut is None else u8(0xF0) + u16(cut)
    if splits:  # a byte from 0xa0 up whose remainder by 3 is the number of pieces - 2
        assert 1 <= len(splits) <= 3
        out += u8(0xA2 + len(splits) - 1) + b"".join(u16(n - 1) for n in splits)
    else:
        out += u8(0)
    odd = 1 if room_split is not None else 0
    if room == "fit":
        out += u8(0x00 | odd)
    elif room == 0:
        out += u8(0xB0)
    else:
        out += u8(0xE0 | odd) + u16(room)
    if room_split is not None:
        out += u8(room_split - 1)
    return out


def op_control(batch=False):
    return u8(0x80 if batch else 0x00)


def create(rid, fmt_index, w, h, fence=None, batch=False, **kw):
    if w == h == 64:
        size = u8(4)
    elif 1 <= w <= 128 and 1 <= h <= 128:
        size = u8(0) + u8(w - 1) + u8(h - 1)
    else:
        size = u8(7) + u32(w) + u32(h)
    fmt = u8(fmt_index) if fmt_index is not None else u8(0xF0) + u32(0x1234)
    return (op_control(batch) + u8(0) + header(fence) + res(rid) + fmt + size + chain(**kw))


def data(offset):
    """A data-area address (a multiple of 64 bytes in)."""
    assert offset % 64 == 0 and offset // 64 < 0x10000
    return u8(0) + u16(offset // 64)


def attach(rid, entries, nr_entries=None, fence=None, batch=False, **kw):
    """entries: ("even", address_bytes) takes the resource's bytes split evenly;
    ("len", length, address_bytes) gives a length. address_bytes from data() or addr_*()."""
    n = len(entries)
    assert 1 <= n <= 4 or (n % 4 == 0 and n <= 124)
    nb = u8(n - 1) if 1 <= n <= 4 else u8(0xE0 + n // 4)
    if nr_entries is None:
        nf = u8(0)
    else:
        nf = u8(0xE0 + {"more": 0, "huge": 1, "over_cap": 2, "fewer": 3}[nr_entries])
    out = op_control(batch) + u8(3) + header(fence) + res(rid) + nb + nf
    for e in entries:
        if e[0] == "even":
            mode_and_addr = e[1]
            out += mode_and_addr
        else:
            _, length, mode_and_addr = e
            mode = mode_and_addr[0] | 0xC0  # a 32-bit length follows the mode
            out += u8(mode) + u32(length) + mode_and_addr[1:]
    return out + chain(**kw)


def addr_across_ab(back):  # region B's start minus `back`: runs from A into B
    return u8(4) + u16(back)


def addr_c(offset16):  # region C + 16 * offset16
    return u8(5) + u16(offset16)


def addr_past_b():  # the end of region B, into the hole
    return u8(0x0E) + u16(64)


def addr_past_c():  # the end of region C: past all of RAM
    return u8(6) + u16(64)


def addr_raw(gpa):
    return u8(7) + u64(gpa)


def transfer(rid, r=None, offset=None, fence=None, batch=False, **kw):
    o = u8(0) if offset is None else u8(0xE0) + u64(offset)
    return op_control(batch) + u8(5) + header(fence) + res(rid) + rect(r) + o + chain(**kw)


def set_scanout(sid, rid, r=None, outputs=1, fence=None, batch=False, **kw):
    return (op_control(batch) + u8(7) + header(fence) + scanout(sid, outputs) + res(rid) + rect(r)
            + chain(**kw))


def flush(rid, r=None, fence=None, batch=False, **kw):
    return op_control(batch) + u8(9) + header(fence) + res(rid) + rect(r) + chain(**kw)


def detach(rid, fence=None, **kw):
    return op_control() + u8(11) + header(fence) + res(rid) + chain(**kw)


def unref(rid, fence=None, batch=False, **kw):
    return op_control(batch) + u8(12) + header(fence) + res(rid) + chain(**kw)


def display_info(fence=None, **kw):
    return op_control() + u8(13) + header(fence) + chain(**kw)


def get_edid(sid, outputs=1, fence=None, **kw):
    return op_control() + u8(14) + header(fence) + scanout(sid, outputs) + chain(**kw)


def other(cmd, body=b"", fence=None, ctx=None, **kw):
    o = u8(OTHER.index(cmd)) if cmd in OTHER else u8(0xF0) + u32(cmd)
    if ctx is not None:  # a fenced header naming a context
        h = u8(0x81) + u32(fence or 1) + u8(ctx) + u8(0)
    else:
        h = header(fence)
    return op_control() + u8(15) + o + h + u8(len(body)) + body + chain(**kw)


def cursor(kind, sid=0, x=0, y=0, rid=0, hot=(0, 0), outputs=1, fence=None, batch=False,
           room="fit", **kw):
    pick = {"update": 0, "move": 4, "create_on_cursor": 0x87}[kind]
    out = u8(0x87 if batch else 0x07) + u8(pick) + header(fence) + scanout(sid, outputs)
    out += u16(x) + u16(y)
    if kind == "update":
        out += res(rid) + u8(hot[0]) + u8(hot[1])
    return out + chain(room=room, **kw)


def run_control():
    return u8(0x09)


def run_cursor():
    return u8(0x0A)


def set_sink(which):
    return u8(0x0B) + u8({"a": 0x00, "b": 0x10, None: 0x20}[which])


def sink_fails(which, fails=True, refused=False):
    """The sink's calls fail (Unavailable, or InvalidArgument: refused) or succeed again."""
    pick = 3 | (0 if fails else 0x80) | (0x40 if refused else 0) | (8 if which == "b" else 0)
    return u8(0x0B) + u8(pick)


def sink_display_info(which, entries):
    """entries: (enabled, width_choice, height_choice, u16) with choices 0: 0, 1: ~0, 2: 640,
    3: the u16."""
    out = u8(0x0B) + u8(4 | (8 if which == "b" else 0)) + u8(len(entries))
    for enabled, wc, hc, v in entries:
        out += u8((1 if enabled else 0) | wc << 1 | hc << 3) + u16(v)
    return out


def sink_edid(which, sid, size_choice, head=b""):
    """size_choice indexes {0, 128, 256, 1024, 1025, 3000, 128, u16 % 1100}."""
    sizes = [0, 128, 256, 1024, 1025, 3000, 128, 0]
    n = min(sizes[size_choice], 16)
    head = (head + bytes(16))[:n]
    return u8(0x0B) + u8(5 | (8 if which == "b" else 0)) + u8(sid) + u8(size_choice) + u16(0) + head


def display_changed(notice_fails=False):
    return u8(0x0C) + u8(0x82 if notice_fails else 2)


def ack_events():
    return u8(0x0C) + u8(3)


def config_write(offset, payload):
    return u8(0x0C) + u8(1) + u8(offset) + u8(len(payload)) + payload


def config_read(offset, n):
    return u8(0x0C) + u8(0) + u8(offset) + u8(n)


def draw(offset, payload):
    assert offset % 64 == 0 and len(payload) <= 64
    return u8(0x0D) + u16(offset // 64) + u8(len(payload)) + payload


def reset():
    return u8(0x0E)


def swap_memory():  # onto the other memory table (the second has no region C)
    return u8(0x1E)


def restart_queues():
    return u8(0x3E)


def restart_queue(i):
    return u8(0x2E | (i << 6))


# ---- sessions


def display_session():
    """What Linux's driver does at boot and while a console runs."""
    s = config()
    s += display_info() + get_edid(0)
    s += create(1, 3, 64, 48, fence=1)  # X8R8G8B8
    s += attach(1, [("even", data(0))], fence=2)
    s += draw(0, bytes(range(64))) + draw(64 * 48 * 2, b"\xff" * 64)
    s += transfer(1, fence=3) + set_scanout(0, 1) + flush(1, fence=4)
    s += transfer(1, (8, 4, 16, 8)) + flush(1, (8, 4, 16, 8))
    s += create(2, 2, 64, 64)  # an A8R8G8B8 cursor
    s += attach(2, [("even", data(0x40000))]) + transfer(2)
    s += cursor("update", rid=2, x=100, y=50, hot=(3, 4)) + cursor("move", x=120, y=60)
    s += cursor("update", rid=0)  # hide
    s += set_scanout(0, 0) + detach(1) + unref(1) + unref(2, fence=5)
    return s


def formats_session():
    """Every 2D format through a transfer and a flush, and the cursor from each."""
    s = config(sink="b")
    for i in range(8):
        s += create(1, i, 64, 64) + attach(1, [("even", data(0x10000 * i))])
        s += draw(0x10000 * i, bytes((j * 37 + i) & 0xFF for j in range(64)))
        s += transfer(1) + set_scanout(0, 1) + flush(1)
        s += cursor("update", rid=1, hot=(70, 1)) + unref(1)
    return s


def multi_scanout_session():
    """Four outputs on parts of one resource, the display end swapped and failing, its own
    display information and EDIDs, config events."""
    o = 4
    s = config(outputs=o, sink="a")
    s += create(1, 1, 256, 128) + attach(1, [("even", data(0)), ("even", data(0x40000))])
    s += draw(0, b"\x10\x20\x30\x40" * 16) + transfer(1)
    for i in range(o):
        s += set_scanout(i, 1, (64 * i, 0, 64, 128), outputs=o)
    s += flush(1) + flush(1, (32, 16, 128, 64))
    s += cursor("update", sid=3, rid=0, outputs=o)
    s += create(2, 3, 64, 64) + attach(2, [("even", data(0x80000))]) + transfer(2)
    s += cursor("update", sid=1, rid=2, x=5, y=6, outputs=o)
    s += set_sink("b") + flush(1, (0, 0, 64, 64)) + set_sink(None) + flush(1)
    s += set_sink("a") + sink_fails("a") + flush(1) + sink_fails("a", refused=True) + flush(1)
    s += cursor("move", sid=1, x=9, y=9, outputs=o) + sink_fails("a", False)
    s += sink_display_info("a", [(True, 3, 3, 1920), (False, 0, 0, 0), (True, 1, 2, 0)])
    s += display_info() + get_edid(0, o) + get_edid(1, o) + get_edid(2, o) + get_edid(3, o)
    s += sink_edid("a", 1, 1, b"\x00\xff\xff\xff\xff\xff\xff\x00") + get_edid(1, o)
    s += sink_edid("a", 2, 5) + get_edid(2, o) + sink_edid("a", 3, 0) + get_edid(3, o)
    s += get_edid(o, o)
    s += display_changed() + config_read(0, 16) + ack_events()
    s += config_write(4, b"\x01\x00\x00\x00") + config_write(0, b"\x01")
    s += unref(1) + flush(1) + set_scanout(2, 1, outputs=o)
    s += reset() + display_info() + create(1, 4, 16, 16)
    return s


def backing_edges_session():
    """Backing entries across regions, outside RAM, wrapping; entry counts that do not match;
    offsets and rects beyond the backing; sizes and ids the table refuses; the caps."""
    s = config()
    s += create(1, 3, 128, 64)  # 32 KiB
    s += attach(1, [("len", 0x4000, addr_across_ab(0x2000)), ("len", 0x4000, addr_c(0))])
    s += transfer(1) + transfer(1, (0, 63, 128, 1)) + transfer(1, offset=0x8000 - 512 + 4)
    s += transfer(1, ("raw", 0, 0, 0xFFFFFFFF, 1)) + transfer(1, offset=0xFFFFFFFFFFFFFF00)
    s += attach(1, [("even", data(0))])  # already attached
    s += detach(1) + detach(1) + transfer(1)
    s += attach(1, [("len", 0x8000, addr_past_c())])
    s += attach(1, [("len", 0x8000, addr_past_b())])
    s += attach(1, [("len", 0x100, addr_raw(0xFFFFFFFFFFFFFFF0))])
    s += attach(1, [("even", data(0))], nr_entries="more")
    s += attach(1, [("even", data(0))], nr_entries="huge")
    s += attach(1, [("even", data(0))], nr_entries="over_cap")
    s += attach(1, [("even", data(0))] * 2, nr_entries="fewer") + detach(1)
    s += attach(1, [("even", data(0x1000 * i)) for i in range(20)])  # over the cap of 16
    s += attach(1, [("len", 0, data(0)), ("len", 0x8000, data(0x100000))])
    s += transfer(1) + transfer(1, (1, 1, 127, 63))
    s += attach(3, [("even", data(0))])  # no such resource
    s += create(0, 0, 8, 8) + create(1, 0, 8, 8) + create(2, None, 8, 8)
    s += create(2, 0, 0, 8) + create(2, 0, 0x40000001, 1) + create(2, 0, 0xFFFFFFFF, 0xFFFFFFFF)
    s += create(2, 0, 512, 1025)  # just over 2 MiB
    for rid in range(2, 9):  # the sixth and later are refused
        s += create(rid, 0, 16, 16)
    s += unref(8) + unref(6) + create(8, 0, 16, 16)
    return s


def hostile_chains_session():
    """Requests cut and split, answers with no room, too little or split room, batches, commands
    the device does not know or not on this queue, fences with ring indexes, restarts."""
    s = config(outputs=2, sink=None)
    s += create(1, 0, 32, 32, splits=(7, 9, 13)) + create(2, 0, 64, 64, cut=39)
    s += create(2, 0, 64, 64, room=0) + create(2, 0, 64, 64, room=23) + create(2, 0, 64, 64,
                                                                             room=40, room_split=5)
    s += attach(1, [("even", data(0)), ("even", data(0x2000))], splits=(32, 16))
    s += attach(1, [("even", data(0))], cut=40)
    s += display_info(room=200) + display_info(room=408, room_split=24) + display_info(cut=23)
    s += get_edid(1, 2, room=1056, room_split=200) + get_edid(0, 2, cut=28)
    s += create(3, 1, 64, 64, batch=True, fence=7) + attach(3, [("even", data(0))], batch=True)
    s += transfer(3, batch=True) + set_scanout(1, 3, outputs=2, batch=True)
    s += flush(3, batch=True) + unref(3, batch=True) + run_control()
    s += cursor("update", sid=1, rid=1, outputs=2, batch=True) + cursor("move", batch=True)
    s += cursor("move", sid=2, outputs=2, room=0) + cursor("create_on_cursor", cut=20)
    s += run_cursor()
    for cmd in (0x200, 0x201, 0x204, 0x207, 0x108, 0x10C, 0x300, 0x1100, 0x7777):
        s += other(cmd, body=bytes(range(24)))
    s += other(0x205, ctx=5, fence=9) + other(0x201, fence=3)
    s += op_control() + u8(13) + u8(0xE0) + u32(77) + u8(3) + chain()  # fence + ring index
    s += restart_queue(0) + display_info() + restart_queue(1) + cursor("move")
    s += create(4, 0, 8, 8, batch=True) + restart_queues() + create(4, 0, 8, 8)
    s += reset() + display_info() + get_edid(0, 2)
    return s


def big_session():
    """Sixteen outputs, the large limits (4 MiB of resources), a 512x384 resource."""
    o = 16
    s = config(outputs=o, big=True, sink="b")
    s += create(1, 3, 512, 384)
    s += attach(1, [("even", data(0))]) + draw(0x1000, b"\x80" * 64) + transfer(1)
    s += set_scanout(15, 1, (0, 0, 512, 384), outputs=o) + flush(1)
    s += set_scanout(7, 1, (256, 192, 256, 192), outputs=o) + flush(1, (250, 190, 100, 100))
    s += create(2, 0, 1024, 1024)  # 4 MiB: over the cap with resource 1
    s += create(3, 0, 64, 64) + attach(3, [("even", data(0x300000 - 0x4000))]) + transfer(3)
    s += cursor("update", sid=15, rid=3, outputs=o) + cursor("move", sid=16, outputs=o)
    s += display_info() + get_edid(15, o) + set_sink("a") + unref(1) + reset()
    return s


def memory_swap_session():
    """A backing in region C, then the front end's memory table without C: the transfer finds it
    gone, an attach there is refused; back on the first table it works again. And the backing
    bytes cap (1 MiB in the small limits)."""
    s = config(sink="b")
    s += create(1, 3, 64, 64) + attach(1, [("len", 0x4000, addr_c(0x100))])
    s += transfer(1) + set_scanout(0, 1) + flush(1)
    s += swap_memory() + transfer(1) + transfer(1, (0, 0, 64, 1)) + flush(1)
    s += create(2, 3, 64, 64) + attach(2, [("len", 0x4000, addr_c(0x100))])
    s += attach(2, [("len", 0x2000, addr_across_ab(0x1000)), ("len", 0x2000, data(0))])
    s += transfer(2) + cursor("update", rid=2)
    s += display_changed(notice_fails=True) + ack_events()
    s += swap_memory() + transfer(1) + transfer(2) + flush(1)
    s += create(3, 0, 512, 384)
    s += attach(3, [("len", 0xA0000, data(0)), ("len", 0xA0000, data(0x100000))])  # 1.25 MiB
    s += attach(3, [("even", data(0))]) + transfer(3, (0, 100, 512, 100))
    return s


# ---- gpu_device_3d_fuzz: the device with a renderer (see Harness::Step in gpu_device_3d_fuzz.cc)


def config3d(outputs=1, big=False, eventfd=False, few_contexts=False, sink=True):
    c = outputs - 1
    c |= 4 if big else 0
    c |= 8 if eventfd else 0
    c |= 0x10 if few_contexts else 0
    c |= 0 if sink else 0x20
    return u8(c)


def ctx_id(c):
    if 1 <= c <= 4:
        return u8(c - 1)
    if c == 0:
        return u8(0xE0)
    return u8(0xF0) + u32(c)


def h3(fence=None, ring_idx=None):
    if fence is None:
        return u8(0)
    if ring_idx is None:
        return u8(0x80) + u32(fence) + u8(0)
    return u8(0xE0) + u32(fence) + u8(ring_idx)


def ctl(pick, batch=False):
    return u8(0x80 if batch else 0x00) + u8(pick)


def c3_ctx_create(c, name=b"gl", nlen=None, fence=None, batch=False, **kw):
    if nlen is None:
        n = u8(len(name))
    elif nlen < 65:
        n = u8(nlen)
    else:  # beyond what a byte choice gives
        n = u8(0xF0) + u32(nlen)
    return ctl(0, batch) + ctx_id(c) + h3(fence) + n + u8(len(name)) + name + chain(**kw)


def c3_ctx_destroy(c, fence=None, batch=False, **kw):
    return ctl(2, batch) + ctx_id(c) + h3(fence) + chain(**kw)


def c3_ctx_resource(c, rid, detach=False, fence=None, **kw):
    return ctl(0x8F if detach else 3) + ctx_id(c) + h3(fence) + res(rid) + chain(**kw)


def c3_create(rid, w, h, fmt_index=1, target=2, raw_format=None, extra=None, fence=None,
              batch=False, **kw):
    """extra: (depth, array_size, last_level, nr_samples) for a texture beyond one level."""
    if target == 2:
        t = u8(0)
    else:
        t = u8(0xC0 + (target - 0xC0 % 10) % 10) if target < 10 else u8(0xF0) + u32(target)
    f = u8(fmt_index) if raw_format is None else u8(0xF0) + u32(raw_format)
    if w == h == 64:
        size = u8(4)
    elif 1 <= w <= 128 and 1 <= h <= 128:
        size = u8(0) + u8(w - 1) + u8(h - 1)
    else:
        size = u8(6) + u32(w) + u32(h)
    if extra is None:
        e = u8(0)
    else:
        depth, layers, levels, samples = extra
        e = u8(0xF0) + u8(depth) + u8(layers) + u8(levels) + u8(samples) + u32(0)  # flags
    return ctl(4, batch) + h3(fence) + res(rid) + t + f + u8(0) + size + e + chain(**kw)


def c3_create_2d(rid, w=16, h=16, fence=None, **kw):
    size = u8(1) if w == h == 64 else u8(w - 1) + u8(h - 1)
    assert w == h == 64 or (w % 2 == 1 and w <= 63)
    return ctl(6) + h3(fence) + res(rid) + u8(1) + size + chain(**kw)


def c3_attach(rid, entries, nr_entries=None, fence=None, batch=False, **kw):
    """entries: ("even", offset) for the resource's bytes split evenly in the data area, or
    ("len", length, address_bytes) with address bytes from c3_data/c3_past_ram/c3_raw."""
    n = len(entries)
    assert 1 <= n <= 4
    nf = u8(0) if nr_entries is None else u8(0xE0 + {"more": 0, "huge": 1, "none": 2,
                                                     "fewer": 3}[nr_entries])
    out = ctl(7, batch) + h3(fence) + res(rid) + u8(n - 1) + nf
    for e in entries:
        if e[0] == "even":
            out += u8(0) + u16(e[1] // 64)
        else:
            _, length, addr = e
            out += u8(addr[0] | 0xC0) + u32(length) + addr[1:]
    return out + chain(**kw)


def c3_data(offset):
    return u8(0) + u16(offset // 64)


def c3_past_ram():
    return u8(5) + u16(100)


def c3_raw(gpa):
    return u8(6) + u64(gpa)


def c3_detach(rid, fence=None, **kw):
    return ctl(9) + h3(fence) + res(rid) + chain(**kw)


def c3_unref(rid, fence=None, batch=False, **kw):
    return ctl(10, batch) + h3(fence) + res(rid) + chain(**kw)


def c3_submit(c, words, size=None, body=b"", fence=None, batch=False, **kw):
    """`words` 32-bit words sent; the header says `size` bytes (default all of them)."""
    z = u8(0) if size is None else u8(0xF0) + u32(size)
    return (ctl(11, batch) + ctx_id(c) + h3(fence) + u8(words) + z + u8(0) + u8(len(body)) + body
            + chain(**kw))


def c3_transfer(rid, c=None, from_host=False, box=None, fence=None, batch=False, **kw):
    """c None: context 0. box None: the whole resource."""
    sel = u8(0) if c is None else u8(0x40) + ctx_id(c)
    b = u8(0) if box is None else u8(0xC0) + b"".join(u32(v) for v in box)
    return ctl(0x85 if from_host else 13, batch) + sel + h3(fence) + res(rid) + b + chain(**kw)


def c3_scanout(sid, rid, r=None, fence=None, **kw):
    rr = u8(0) if r is None else u8(0xE0) + b"".join(u32(v) for v in r)
    return ctl(15) + h3(fence) + u8(sid) + res(rid) + rr + chain(**kw)


def c3_flush(rid, r=None, fence=None, batch=False, **kw):
    rr = u8(0) if r is None else u8(0xE0) + b"".join(u32(v) for v in r)
    return ctl(16, batch) + h3(fence) + res(rid) + rr + chain(**kw)


def c3_transfer_2d(rid, fence=None, **kw):
    return ctl(17) + h3(fence) + res(rid) + u8(0) + u8(0) + chain(**kw)


def c3_capset_info(index, fence=None, **kw):
    return ctl(0x8A) + u8(index) + h3(fence) + chain(**kw)


def c3_capset(cid, version, fence=None, **kw):
    return ctl(18) + u8(cid) + u8(version) + h3(fence) + chain(**kw)


def c3_other(index, c=1, body=b"", fence=None, **kw):
    return ctl(19) + u8(index) + ctx_id(c) + h3(fence) + u8(len(body)) + body + chain(**kw)


def c3_cursor(rid=None, sid=0, x=0, y=0, hot=(0, 0), **kw):
    if rid is None:  # a move
        return u8(8) + u8(1) + h3() + u8(sid) + u16(x) + u16(y) + chain(**kw)
    return u8(8) + u8(0) + h3() + u8(sid) + u16(x) + u16(y) + res(rid) + u8(hot[0]) + u8(
        hot[1]) + chain(**kw)


def c3_run():
    return u8(9)


def c3_signal_all():
    return u8(10) + u8(0)


def c3_signal(index):
    return u8(10) + u8(0x80 | index)


FAIL_CALLS = ["", "CreateContext", "CreateResource", "AttachBacking", "Submit",
              "TransferToHost", "ReadPixels", "CreateFence"]


def c3_fail(call="", status=0):
    return u8(11) + u8(FAIL_CALLS.index(call) << 2 | status)


def c3_sink(on=True):
    return u8(12 if on else 0x8C)


def c3_draw(offset, payload):
    return u8(13) + u16(offset // 64) + u8(len(payload)) + payload


def c3_config():
    return u8(14)


def c3_restart():
    return u8(15)


def c3_new_memory():
    return u8(0x1F)


def c3_reset():
    return u8(0x2F)


def session_3d_basic():
    """What Mesa's virgl driver does: a context, a render target with backing, command streams,
    transfers, the scanout read back, a 3D cursor, capsets; fenced where the driver fences."""
    s = config3d(outputs=2)
    s += c3_capset_info(0) + c3_capset_info(1) + c3_capset(2, 2) + c3_capset(1, 1)
    s += c3_ctx_create(1, b"Xorg", fence=1) + c3_create(1, 64, 48, fmt_index=1, fence=2)
    s += c3_attach(1, [("even", 0)]) + c3_ctx_resource(1, 1)
    s += c3_draw(0, bytes(range(64)))
    s += c3_submit(1, 16, body=bytes(range(64)), fence=3) + c3_transfer(1, c=1, fence=4)
    s += c3_transfer(1, from_host=True) + c3_scanout(0, 1) + c3_flush(1, fence=5)
    s += c3_signal_all() + c3_scanout(1, 1, (8, 8, 32, 32)) + c3_flush(1, (0, 0, 16, 16))
    s += c3_create(2, 64, 64, fmt_index=0) + c3_cursor(2, x=10, y=20, hot=(1, 2))
    s += c3_cursor(None, x=30, y=40) + c3_cursor(0)
    s += c3_ctx_resource(1, 1, detach=True) + c3_detach(1) + c3_unref(1, fence=6)
    s += c3_ctx_destroy(1) + c3_signal_all() + c3_config()
    return s


def session_3d_fences():
    """Fenced commands in batches on the renderer's eventfd, signalled a few at a time; fences
    the renderer cannot make; held answers when the queues stop and at reset."""
    s = config3d(eventfd=True)
    s += c3_ctx_create(1, fence=10, batch=True) + c3_ctx_create(2, fence=11, batch=True)
    s += c3_create(1, 32, 32, fence=12, batch=True) + c3_run()
    s += c3_signal(0) + c3_run() + c3_signal(2) + c3_run()
    for i in range(6):
        s += c3_submit(1 + i % 2, 4 + i, fence=20 + i, batch=True)
    s += c3_run() + c3_signal(4) + c3_run()
    s += c3_fail("CreateFence") + c3_submit(1, 8, fence=30) + c3_submit(1, 8, fence=31)
    s += c3_submit(1, 8, fence=32, room=0) + c3_ctx_create(1, fence=33)  # in use: at once
    s += c3_restart() + c3_submit(2, 2, fence=34) + c3_signal_all()
    s += c3_submit(2, 2, fence=35) + c3_reset() + c3_ctx_create(1) + c3_submit(1, 4, fence=36)
    s += c3_signal_all()
    return s


def session_3d_routing():
    """2D and 3D resources side by side: ids taken in either half, the common commands on
    both, a TRANSFER_TO_HOST_2D of a 3D resource, scanouts swapped between them, unref of the
    one shown, the display end gone and back."""
    s = config3d(outputs=2)
    s += c3_create(1, 32, 16) + c3_create_2d(2, 31, 16) + c3_create_2d(1, 31, 16)
    s += c3_create(2, 16, 16) + c3_attach(1, [("even", 0)]) + c3_attach(2, [("even", 0x10000)])
    s += c3_transfer_2d(1) + c3_transfer_2d(2) + c3_transfer(2)
    s += c3_scanout(0, 1) + c3_scanout(1, 2) + c3_flush(1) + c3_flush(2)
    s += c3_scanout(0, 2) + c3_flush(1) + c3_sink(False) + c3_flush(2) + c3_sink(True)
    s += c3_scanout(0, 1) + c3_unref(1) + c3_flush(1) + c3_create_2d(1, 63, 8)
    s += c3_detach(2) + c3_detach(2) + c3_unref(2) + c3_create(2, 64, 64) + c3_cursor(2)
    s += c3_ctx_create(1) + c3_ctx_resource(1, 1) + c3_ctx_resource(1, 2) + c3_reset()
    s += c3_create(1, 8, 8)
    return s


def session_3d_checks():
    """What the device refuses before the renderer: context ids, the context cap, submits not
    whole words or beyond the request, transfers in unknown contexts, backings outside RAM or
    over the caps, bad targets and sizes, buffers, capsets out of range; and the renderer
    failing calls."""
    s = config3d(few_contexts=True)
    s += c3_ctx_create(0) + c3_ctx_create(1) + c3_ctx_create(1) + c3_ctx_create(2, nlen=65)
    s += c3_ctx_create(2) + c3_ctx_create(3) + c3_ctx_create(4) + c3_ctx_destroy(4)
    s += c3_fail("CreateContext") + c3_ctx_destroy(3) + c3_ctx_create(3)
    s += c3_submit(4, 4) + c3_submit(1, 4, size=6) + c3_submit(1, 4, size=20)
    s += c3_submit(1, 4, size=0xFFFFFFFC) + c3_submit(1, 4, cut=30) + c3_submit(1, 0)
    s += c3_fail("Submit") + c3_submit(1, 4)
    s += c3_create(1, 32, 32) + c3_transfer(1, c=4) + c3_transfer(1, from_host=True)
    s += c3_transfer(1, c=2, box=(0, 0, 0, 0xFFFFFFFF, 1, 1)) + c3_fail("TransferToHost")
    s += c3_transfer(1)
    s += c3_attach(1, [("len", 0x1000, c3_past_ram())]) + c3_attach(1, [("len", 16, c3_raw(
        0xFFFFFFFFFFFFFFF0))])
    s += c3_attach(1, [("even", 0)], nr_entries="none") + c3_attach(1, [("even", 0)],
                                                                     nr_entries="huge")
    s += c3_attach(1, [("even", 0)], nr_entries="more") + c3_attach(1, [("len", 0x40000, c3_data(
        0)), ("len", 0x40000, c3_data(0x40000))])
    s += c3_fail("AttachBacking") + c3_attach(1, [("even", 0)]) + c3_attach(1, [("even", 0)])
    s += c3_attach(1, [("even", 0)])
    s += c3_create(2, 8, 8, target=9) + c3_create(2, 0, 8) + c3_create(2, 20000, 1)
    s += c3_create(2, 8, 8, extra=(0, 1, 0, 0)) + c3_create(2, 8, 8, extra=(1, 1, 40, 0))
    s += c3_create(2, 8, 8, extra=(2, 3, 3, 4)) + c3_create(3, 4096, 1, target=0)
    s += c3_create(4, 0xFFFFFFFF, 1, target=0) + c3_create(4, 600, 600)
    s += c3_fail("CreateResource") + c3_create(4, 8, 8) + c3_create(4, 8, 8) + c3_create(5, 8, 8)
    s += c3_create(6, 8, 8) + c3_create(7, 8, 8)  # over the count cap (5)
    s += c3_capset_info(2) + c3_capset_info(0, room=24) + c3_capset(3, 0) + c3_capset(2, 3)
    s += c3_capset(2, 2, room=1000) + c3_other(0) + c3_other(2, body=bytes(32)) + c3_other(6)
    s += c3_scanout(0, 1, (0, 0, 33, 32)) + c3_scanout(0, 3) + c3_scanout(1, 1)
    s += c3_scanout(0, 1) + c3_fail("ReadPixels") + c3_flush(1) + c3_flush(1, (0, 0, 64, 1))
    s += c3_create(8, 64, 64, raw_format=0x1234) + c3_cursor(8) + c3_cursor(1)
    return s


def session_3d_memory():
    """3D backings in a memory table the front end then replaces: the old table goes, the
    device keeps it mapped for the backings it handed the renderer; transfers still read them;
    a new backing in the new table; big limits with large textures."""
    s = config3d(big=True, eventfd=True)
    s += c3_ctx_create(1) + c3_create(1, 256, 128) + c3_attach(1, [("even", 0), ("even", 0x40000)])
    s += c3_create(2, 4096, 1, target=0) + c3_attach(2, [("even", 0x100000)])
    s += c3_new_memory() + c3_transfer(1, c=1) + c3_transfer(2, from_host=True)
    s += c3_scanout(0, 1) + c3_flush(1) + c3_detach(1) + c3_attach(1, [("even", 0x80000)])
    s += c3_transfer(1) + c3_new_memory() + c3_new_memory() + c3_transfer(1, fence=7)
    s += c3_create(3, 2048, 2048) + c3_create(4, 1024, 1024) + c3_signal_all() + c3_reset()
    return s


def main():
    d3 = os.path.join(HERE, "corpus", "gpu_device_3d_fuzz")
    os.makedirs(d3, exist_ok=True)
    for name, data_ in {
        "basic": session_3d_basic(),
        "fences": session_3d_fences(),
        "routing": session_3d_routing(),
        "checks": session_3d_checks(),
        "memory": session_3d_memory(),
    }.items():
        with open(os.path.join(d3, name), "wb") as f:
            f.write(data_)

    d = os.path.join(HERE, "corpus", "gpu_device_fuzz")
    os.makedirs(d, exist_ok=True)
    for name, data_ in {
        "display_session": display_session(),
        "formats": formats_session(),
        "multi_scanout": multi_scanout_session(),
        "backing_edges": backing_edges_session(),
        "hostile_chains": hostile_chains_session(),
        "big": big_session(),
        "memory_swap": memory_swap_session(),
    }.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data_)


if __name__ == "__main__":
    main()

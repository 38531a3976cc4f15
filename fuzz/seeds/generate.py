#!/usr/bin/env python3
"""Writes the checked-in seed inputs of the fuzz targets (fuzz/seeds/TARGET/NAME): a few
valid inputs of each kind, so that libFuzzer starts from the interesting shapes instead of
discovering every header byte by chance. Byte layouts follow PostgreSQL's documentation
("Logical Replication Message Formats", "Streaming Replication Protocol") and the input
formats described at the top of each fuzz/fuzz_targets/TARGET.rs.

    python3 fuzz/seeds/generate.py     # rewrites the generated seeds; config seeds are copies

Run it again after changing a target's input format.
"""
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def write(target, name, data):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


u8 = lambda v: struct.pack(">B", v)
i16 = lambda v: struct.pack(">h", v)
i32 = lambda v: struct.pack(">i", v)
u32 = lambda v: struct.pack(">I", v)
u64 = lambda v: struct.pack(">Q", v)
i64 = lambda v: struct.pack(">q", v)
cstr = lambda s: s.encode() + b"\0"

LSN, END, TS, XID, REL = 0x16B3748, 0x16B3780, 800_000_000_000_000, 750, 16385


def tuple_(*cells):
    out = i16(len(cells))
    for c in cells:
        if c is None:
            out += b"n"
        elif c == "u":
            out += b"u"
        elif isinstance(c, bytes):
            out += b"b" + i32(len(c)) + c
        else:
            out += b"t" + i32(len(c.encode())) + c.encode()
    return out


# --- pgoutput_decode: a context byte (version | 8 in stream | 16 parallel), then a message.
V1, V2, V3, V4 = 1, 2, 3, 4
IN_STREAM, PARALLEL = 8, 16
columns = [(1, "id", 23, -1), (0, "name", 25, -1), (0, "doc", 3802, -1)]
relation = u32(REL) + cstr("public") + cstr("users") + b"d" + i16(len(columns))
for key, name, oid, typmod in columns:
    relation += u8(key) + cstr(name) + u32(oid) + i32(typmod)
row = tuple_("1", "alice", '{"a": [1, 2]}')
key = tuple_("1", None, None)
pgoutput = {
    "begin": (V1, b"B" + u64(LSN) + i64(TS) + u32(XID)),
    "commit": (V1, b"C" + u8(0) + u64(LSN) + u64(END) + i64(TS)),
    "origin": (V1, b"O" + u64(LSN) + cstr("node_a")),
    "relation": (V1, b"R" + relation),
    "relation_full": (V1, b"R" + relation.replace(b"users\0d", b"users\0f")),
    "type": (V1, b"Y" + u32(16390) + cstr("public") + cstr("mood")),
    "insert": (V1, b"I" + u32(REL) + b"N" + row),
    "insert_toast_binary": (V1, b"I" + u32(REL) + b"N" + tuple_("2", "u", b"\x00\x01\xff")),
    "update": (V1, b"U" + u32(REL) + b"N" + row),
    "update_key": (V1, b"U" + u32(REL) + b"K" + key + b"N" + row),
    "update_old": (V1, b"U" + u32(REL) + b"O" + row + b"N" + tuple_("1", "bob", "u")),
    "delete_key": (V1, b"D" + u32(REL) + b"K" + key),
    "delete_old": (V1, b"D" + u32(REL) + b"O" + row),
    "truncate": (V1, b"T" + i32(2) + u8(3) + u32(REL) + u32(REL + 1)),
    "message": (V1, b"M" + u8(1) + u64(LSN) + cstr("sluice_heartbeat") + i32(2) + b"hi"),
    "stream_start": (V2, b"S" + u32(XID) + u8(1)),
    "stream_insert": (V2 | IN_STREAM, b"I" + u32(XID) + u32(REL) + b"N" + row),
    "stream_relation": (V2 | IN_STREAM, b"R" + u32(XID) + relation),
    "stream_stop": (V2 | IN_STREAM, b"E"),
    "stream_commit": (V2, b"c" + u32(XID) + u8(0) + u64(LSN) + u64(END) + i64(TS)),
    "stream_abort": (V2, b"A" + u32(XID) + u32(XID + 1)),
    "stream_abort_parallel": (V4 | PARALLEL, b"A" + u32(XID) + u32(XID) + u64(LSN) + i64(TS)),
    "begin_prepare": (V3, b"b" + u64(LSN) + u64(END) + i64(TS) + u32(XID) + cstr("gid1")),
    "prepare": (V3, b"P" + u8(0) + u64(LSN) + u64(END) + i64(TS) + u32(XID) + cstr("gid1")),
    "stream_prepare": (V3, b"p" + u8(0) + u64(LSN) + u64(END) + i64(TS) + u32(XID) + cstr("g")),
    "commit_prepared": (V3, b"K" + u8(0) + u64(LSN) + u64(END) + i64(TS) + u32(XID) + cstr("g")),
    "rollback_prepared": (
        V3,
        b"r" + u8(0) + u64(LSN) + u64(END) + i64(TS) + i64(TS + 1) + u32(XID) + cstr("g"),
    ),
}
for name, (ctx, message) in pgoutput.items():
    write("pgoutput_decode", name, u8(ctx) + message)


# --- replication_protocol: backend messages as read from the socket.
def backend(tag, body):
    return tag + i32(4 + len(body)) + body


xlog = b"w" + u64(LSN) + u64(END) + i64(TS) + b"B" + u64(LSN) + i64(TS) + u32(XID)
keepalive = b"k" + u64(END) + i64(TS) + u8(1)
error = b"SERROR\0VERROR\0C42704\0Mreplication slot \"app\" does not exist\0Hcreate it\0\0"
write("replication_protocol", "xlogdata", backend(b"d", xlog))
write("replication_protocol", "keepalive", backend(b"d", keepalive))
write("replication_protocol", "error", backend(b"E", error))
write(
    "replication_protocol",
    "stream",
    backend(b"W", u8(0) + i16(0))
    + backend(b"d", keepalive)
    + backend(b"d", xlog)
    + backend(b"N", b"SNOTICE\0Mhello\0\0")
    + backend(b"Z", b"I")
    + b"d\0\0",
)
write("replication_protocol", "bare_xlogdata", xlog)
write("replication_protocol", "bare_error", error)

# --- copy_text: two cut bytes, then COPY text output.
write("copy_text", "rows", u8(40) + u8(200) + b"1\talice\t\\N\n2\tb\\tob\\\\\t{1,2}\n")
write("copy_text", "escapes", u8(0) + u8(128) + b"\\101\\x42\\x4\\xg\\q\\b\\f\\n\\r\\v\t\\377\n\\")
write("copy_text", "unterminated", u8(128) + u8(128) + "é\t😀\t\\N".encode())

# --- text_to_value: an index into the target's OID table, then the text.
MAPPED = [
    "BOOL", "BYTEA", "CHAR", "NAME", "INT8", "INT2", "INT4", "TEXT", "OID", "JSON", "FLOAT4",
    "FLOAT8", "BPCHAR", "VARCHAR", "DATE", "TIME", "TIMESTAMP", "TIMESTAMPTZ", "TIMETZ",
    "NUMERIC", "UUID", "JSONB", "JSON_ARRAY", "BOOL_ARRAY", "BYTEA_ARRAY", "CHAR_ARRAY",
    "NAME_ARRAY", "INT2_ARRAY", "INT4_ARRAY", "TEXT_ARRAY", "BPCHAR_ARRAY", "VARCHAR_ARRAY",
    "INT8_ARRAY", "FLOAT4_ARRAY", "FLOAT8_ARRAY", "OID_ARRAY", "TIMESTAMP_ARRAY", "DATE_ARRAY",
    "TIME_ARRAY", "TIMESTAMPTZ_ARRAY", "NUMERIC_ARRAY", "TIMETZ_ARRAY", "UUID_ARRAY",
    "JSONB_ARRAY",
]
values = {
    "BOOL": "t",
    "BYTEA": "\\xdeadbeef",
    "INT8": "-9223372036854775808",
    "OID": "4294967295",
    "JSON": '{"a": [1, 2.5, null]}',
    "FLOAT8": "-Infinity",
    "FLOAT4": "1.5e-07",
    "DATE": "2024-02-29 BC",
    "TIME": "23:59:59.999999",
    "TIMESTAMP": "2024-01-02 03:04:05.123456",
    "TIMESTAMPTZ": "2024-01-02 03:04:05+05:30",
    "TIMETZ": "12:00:00-03",
    "NUMERIC": "-12.50",
    "UUID": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
    "INT4_ARRAY": "{{1,2},{3,NULL}}",
    "TEXT_ARRAY": '{"a b","c\\"d",NULL,"NULL"}',
    "BYTEA_ARRAY": '{"\\\\x00ff"}',
    "TIMESTAMPTZ_ARRAY": '[0:1]={"2024-01-02 03:04:05+00","infinity"}',
    "NUMERIC_ARRAY": "{1.5,NaN,Infinity}",
    "JSONB_ARRAY": '{"{\\"a\\": 1}"}',
}
for name, text in values.items():
    write("text_to_value", name.lower(), u8(MAPPED.index(name)) + text.encode())
write("text_to_value", "unmapped_interval", u8(len(MAPPED) + 1) + b"1 day 02:00:00")

# --- pg_lsn: text (its first 8 bytes are also read as a number).
for name, text in {"lsn": "16/B374D848", "zero": "0/0", "max": "FFFFFFFF/FFFFFFFF"}.items():
    write("pg_lsn", name, text)

# --- checkpoint_json: checkpoint files as the file store writes them.
checkpoints = {
    "pg": '{"position":{"kind":"pg","lsn":"0/16B3748"},"updated_at_ms":1700000000000,"events":42}',
    "pg_snapshot": '{\n  "position": {\n    "kind": "pg",\n    "lsn": "0/16B3748",\n    "snapshot": true,\n'
    '    "progress": {"table": 1, "page": 4096, "filenode": 16384}\n  },\n  "updated_at_ms": 1\n}\n',
    "sqlite": '{"position":{"kind":"sqlite","seq":7,"snapshot":true},"updated_at_ms":0}',
}
for name, text in checkpoints.items():
    write("checkpoint_json", name, text)

# --- sqlite_row_image: row images as the capture triggers write them.
images = {
    "row": '{"id":1,"name":"alice","price":{"$f":"0.30000000000000004"},"data":{"$b":"DEADBEEF"}}',
    "nulls_and_extra": '{"name":null,"id":-9223372036854775808,"dropped":"x","price":{"$f":"-Inf"}}',
    "empty": "{}",
}
for name, text in images.items():
    write("sqlite_row_image", name, text)

# --- config_parse: the example configs and the configs the error tests use.
os.makedirs(os.path.join(HERE, "config_parse"), exist_ok=True)
for d in [os.path.join(ROOT, "examples"), os.path.join(ROOT, "crates/sluice-config/tests/bad")]:
    for name in sorted(os.listdir(d)):
        shutil.copyfile(os.path.join(d, name), os.path.join(HERE, "config_parse", name))
write(
    "config_parse",
    "postgres.toml",
    '[sources.pg]\ntype = "postgres"\nurl = "postgres://app@localhost:${PORT}/app"\n'
    'tables = ["public.users", "public.*"]\nsnapshot = "initial"\n\n'
    '[transforms.f]\ntype = "filter"\ninputs = ["pg"]\nops = ["insert", "update"]\n\n'
    '[sinks.out]\ntype = "file"\ninputs = ["f"]\npath = "${DB:-out}.jsonl"\n'
    "batch = { max_events = 100 }\n",
)

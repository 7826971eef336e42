// A small MessagePack encoder/decoder for the `lc1.msgpack` subprotocol.
// Written for this project (no third-party code): it covers what the wire contract
// uses — nil, booleans, integers up to 2^53, float64, str, bin, array, map.

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

export function encode(value) {
  const out = new Writer();
  write(out, value);
  return out.bytes();
}

export function decode(buffer) {
  const bytes = buffer instanceof Uint8Array ? buffer : new Uint8Array(buffer);
  const reader = { view: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), bytes, pos: 0 };
  const value = read(reader);
  if (reader.pos !== bytes.length) throw new Error("msgpack: trailing bytes");
  return value;
}

class Writer {
  constructor() {
    this.buf = new Uint8Array(256);
    this.view = new DataView(this.buf.buffer);
    this.pos = 0;
  }
  ensure(n) {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(v) { this.ensure(1); this.view.setUint8(this.pos, v); this.pos += 1; }
  u16(v) { this.ensure(2); this.view.setUint16(this.pos, v); this.pos += 2; }
  u32(v) { this.ensure(4); this.view.setUint32(this.pos, v); this.pos += 4; }
  f64(v) { this.ensure(8); this.view.setFloat64(this.pos, v); this.pos += 8; }
  raw(bytes) { this.ensure(bytes.length); this.buf.set(bytes, this.pos); this.pos += bytes.length; }
  bytes() { return this.buf.slice(0, this.pos); }
}

function write(out, value) {
  if (value === null || value === undefined) return out.u8(0xc0);
  if (value === false) return out.u8(0xc2);
  if (value === true) return out.u8(0xc3);
  if (typeof value === "number") return writeNumber(out, value);
  if (typeof value === "string") {
    const bytes = textEncoder.encode(value);
    const n = bytes.length;
    if (n < 32) out.u8(0xa0 | n);
    else if (n < 0x100) { out.u8(0xd9); out.u8(n); }
    else if (n < 0x10000) { out.u8(0xda); out.u16(n); }
    else { out.u8(0xdb); out.u32(n); }
    return out.raw(bytes);
  }
  if (value instanceof Uint8Array) {
    const n = value.length;
    if (n < 0x100) { out.u8(0xc4); out.u8(n); }
    else if (n < 0x10000) { out.u8(0xc5); out.u16(n); }
    else { out.u8(0xc6); out.u32(n); }
    return out.raw(value);
  }
  if (Array.isArray(value)) {
    const n = value.length;
    if (n < 16) out.u8(0x90 | n);
    else if (n < 0x10000) { out.u8(0xdc); out.u16(n); }
    else { out.u8(0xdd); out.u32(n); }
    for (const item of value) write(out, item);
    return;
  }
  if (typeof value === "object") {
    const keys = Object.keys(value).filter((k) => value[k] !== undefined);
    const n = keys.length;
    if (n < 16) out.u8(0x80 | n);
    else if (n < 0x10000) { out.u8(0xde); out.u16(n); }
    else { out.u8(0xdf); out.u32(n); }
    for (const k of keys) { write(out, k); write(out, value[k]); }
    return;
  }
  throw new Error(`msgpack: cannot encode ${typeof value}`);
}

function writeNumber(out, v) {
  if (Number.isInteger(v) && Math.abs(v) <= Number.MAX_SAFE_INTEGER) {
    if (v >= 0) {
      if (v < 0x80) return out.u8(v);
      if (v < 0x100) { out.u8(0xcc); return out.u8(v); }
      if (v < 0x10000) { out.u8(0xcd); return out.u16(v); }
      if (v < 0x100000000) { out.u8(0xce); return out.u32(v); }
      out.u8(0xcf); out.u32(Math.floor(v / 0x100000000)); return out.u32(v >>> 0);
    }
    if (v >= -32) return out.u8(v & 0xff);
    if (v >= -0x80) { out.u8(0xd0); out.ensure(1); out.view.setInt8(out.pos, v); out.pos += 1; return; }
    if (v >= -0x8000) { out.u8(0xd1); out.ensure(2); out.view.setInt16(out.pos, v); out.pos += 2; return; }
    if (v >= -0x80000000) { out.u8(0xd2); out.ensure(4); out.view.setInt32(out.pos, v); out.pos += 4; return; }
    out.u8(0xd3); out.ensure(8); out.view.setBigInt64(out.pos, BigInt(v)); out.pos += 8; return;
  }
  out.u8(0xcb);
  out.f64(v);
}

function need(r, n) {
  if (r.pos + n > r.bytes.length) throw new Error("msgpack: truncated");
}

function read(r) {
  need(r, 1);
  const b = r.view.getUint8(r.pos++);
  if (b < 0x80) return b;
  if (b >= 0xe0) return b - 0x100;
  if ((b & 0xf0) === 0x80) return readMap(r, b & 0x0f);
  if ((b & 0xf0) === 0x90) return readArray(r, b & 0x0f);
  if ((b & 0xe0) === 0xa0) return readStr(r, b & 0x1f);
  switch (b) {
    case 0xc0: return null;
    case 0xc2: return false;
    case 0xc3: return true;
    case 0xc4: return readBin(r, u(r, 1));
    case 0xc5: return readBin(r, u(r, 2));
    case 0xc6: return readBin(r, u(r, 4));
    case 0xca: need(r, 4); r.pos += 4; return r.view.getFloat32(r.pos - 4);
    case 0xcb: need(r, 8); r.pos += 8; return r.view.getFloat64(r.pos - 8);
    case 0xcc: return u(r, 1);
    case 0xcd: return u(r, 2);
    case 0xce: return u(r, 4);
    case 0xcf: need(r, 8); r.pos += 8; return Number(r.view.getBigUint64(r.pos - 8));
    case 0xd0: need(r, 1); r.pos += 1; return r.view.getInt8(r.pos - 1);
    case 0xd1: need(r, 2); r.pos += 2; return r.view.getInt16(r.pos - 2);
    case 0xd2: need(r, 4); r.pos += 4; return r.view.getInt32(r.pos - 4);
    case 0xd3: need(r, 8); r.pos += 8; return Number(r.view.getBigInt64(r.pos - 8));
    case 0xd9: return readStr(r, u(r, 1));
    case 0xda: return readStr(r, u(r, 2));
    case 0xdb: return readStr(r, u(r, 4));
    case 0xdc: return readArray(r, u(r, 2));
    case 0xdd: return readArray(r, u(r, 4));
    case 0xde: return readMap(r, u(r, 2));
    case 0xdf: return readMap(r, u(r, 4));
    default: throw new Error(`msgpack: unsupported type 0x${b.toString(16)}`);
  }
}

function u(r, n) {
  need(r, n);
  const v = n === 1 ? r.view.getUint8(r.pos) : n === 2 ? r.view.getUint16(r.pos) : r.view.getUint32(r.pos);
  r.pos += n;
  return v;
}

function readStr(r, n) {
  need(r, n);
  const s = textDecoder.decode(r.bytes.subarray(r.pos, r.pos + n));
  r.pos += n;
  return s;
}

function readBin(r, n) {
  need(r, n);
  const v = r.bytes.slice(r.pos, r.pos + n);
  r.pos += n;
  return v;
}

function readArray(r, n) {
  const out = new Array(n);
  for (let i = 0; i < n; i++) out[i] = read(r);
  return out;
}

function readMap(r, n) {
  const out = {};
  for (let i = 0; i < n; i++) {
    const k = read(r);
    out[String(k)] = read(r);
  }
  return out;
}

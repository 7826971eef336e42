// Re-check a lottery draw in the browser, from published data alone
// (same rule as liveserver/commerce/lottery_verify.py):
//   commit  == sha256(seed)                         (hex, seed as UTF-8)
//   winners == the N entrants with the smallest hmac_sha256(key=seed, msg=user id) hex
//              digests (ties broken by user id)
// WebCrypto does the hashing; pages opened over plain http on a LAN address are not a
// secure context and have no crypto.subtle, so a small SHA-256 below takes over there.

const enc = new TextEncoder();

function hex(bytes) {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

export async function sha256Hex(text) {
  if (globalThis.crypto?.subtle) return hex(await crypto.subtle.digest("SHA-256", enc.encode(text)));
  return hex(sha256(enc.encode(text)));
}

/** A function user -> hex digest, with the key imported once. */
export async function ticketer(seed) {
  if (globalThis.crypto?.subtle) {
    const key = await crypto.subtle.importKey("raw", enc.encode(seed), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    return async (user) => hex(await crypto.subtle.sign("HMAC", key, enc.encode(user)));
  }
  return async (user) => hex(hmacSha256(enc.encode(seed), enc.encode(user)));
}

/** The winners the rule picks from `entrants`. */
export async function draw(seed, entrants, n) {
  const ticket = await ticketer(seed);
  const unique = [...new Set(entrants)];
  const ranked = await Promise.all(unique.map(async (user) => ({ user, t: await ticket(user) })));
  ranked.sort((a, b) => (a.t < b.t ? -1 : a.t > b.t ? 1 : a.user < b.user ? -1 : a.user > b.user ? 1 : 0));
  return ranked.slice(0, n).map((r) => r.user);
}

/**
 * Check a published draw. Returns {ok, commitOk, winnersOk, expected, problems}.
 * `n` is the number of winners the lottery announced at its start.
 */
export async function verify({ seed, commit, entrants, n, winners }) {
  const problems = [];
  const commitOk = (await sha256Hex(seed)) === commit;
  if (!commitOk) problems.push("sha256(seed) does not match the published commit");
  const expected = await draw(seed, entrants, n);
  const winnersOk = expected.length === winners.length && expected.every((u, i) => u === winners[i]);
  if (!winnersOk) problems.push(`winners differ: expected ${expected.join(", ")}, published ${winners.join(", ")}`);
  return { ok: commitOk && winnersOk, commitOk, winnersOk, expected, problems };
}

// -- a compact SHA-256 and HMAC (FIPS 180-4, RFC 2104), only for non-secure contexts --

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

export function sha256(data) {
  const bitLen = data.length * 8;
  const padded = new Uint8Array(Math.ceil((data.length + 9) / 64) * 64);
  padded.set(data);
  padded[data.length] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(padded.length - 8, Math.floor(bitLen / 0x100000000));
  view.setUint32(padded.length - 4, bitLen >>> 0);
  const h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  const w = new Uint32Array(64);
  const rotr = (x, n) => (x >>> n) | (x << (32 - n));
  for (let off = 0; off < padded.length; off += 64) {
    for (let i = 0; i < 16; i++) w[i] = view.getUint32(off + i * 4);
    for (let i = 16; i < 64; i++) {
      const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3);
      const s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) >>> 0;
    }
    let [a, b, c, d, e, f, g, hh] = h;
    for (let i = 0; i < 64; i++) {
      const t1 = (hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i]) >>> 0;
      const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
      hh = g; g = f; f = e; e = (d + t1) >>> 0; d = c; c = b; b = a; a = (t1 + t2) >>> 0;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
  }
  const out = new Uint8Array(32);
  const outView = new DataView(out.buffer);
  h.forEach((v, i) => outView.setUint32(i * 4, v));
  return out;
}

export function hmacSha256(key, message) {
  if (key.length > 64) key = sha256(key);
  const block = new Uint8Array(64);
  block.set(key);
  const inner = new Uint8Array(64 + message.length);
  const outer = new Uint8Array(64 + 32);
  for (let i = 0; i < 64; i++) {
    inner[i] = block[i] ^ 0x36;
    outer[i] = block[i] ^ 0x5c;
  }
  inner.set(message, 64);
  outer.set(sha256(inner), 64);
  return sha256(outer);
}
